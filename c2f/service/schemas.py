"""Request/response models of the serving API, named by role (with OpenAPI examples)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

Strategy = Literal["model", "popular", "fold_in"]


def _json_integer(value: Any) -> Any:
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
"""An integer as JSON Schema has it: 20 and 20.0, never "20" or true."""


def _json_number_or_string(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a JSON number or string")
    return value


MAX_ID_CHARS = 256  # longest user or item id an event may name


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unknown_user, no_model, validation_error.")
    message: str = Field(description="Human-readable explanation.")
    details: Any = Field(None, description="Optional structured details (validation errors, kept version...).")


class ErrorResponse(BaseModel):
    """Every non-2xx response has this shape."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"error": {"code": "unknown_user", "message": "unknown user id 'u42'"}}}
    )
    error: ErrorBody


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "user_id": "42",
                "items": [{"item_id": "1337", "score": 4.21}, {"item_id": "7", "score": 3.9}],
                "model_version": "20250101T120000000000Z-c2f",
                "strategy": "model",
                "ignored_exclude": [],
                "ignored_items": [],
            }
        },
    )
    user_id: str
    items: list[ScoredItem]
    model_version: str
    strategy: Strategy = Field(
        description="'model' (personalised; recorded events included), 'fold_in' (a user the model never trained, "
        "folded in from its recorded events: POST /interactions) or 'popular' (fallback for unknown users)."
    )
    ignored_exclude: list[str] = Field(
        default_factory=list, description="Ids passed in `exclude` that the model does not know (ignored)."
    )
    ignored_items: list[str] = Field(
        default_factory=list, description="Ids passed in `items` (the allow-list) that the model does not know."
    )


class BatchRecommendRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"user_ids": ["42", "43"], "n": 10, "exclude_seen": True},
                {"user_ids": ["42"], "n": 3, "items": ["7", "9", "1337"], "where": ["genre:jazz|blues"]},
            ]
        }
    )
    user_ids: list[str] = Field(min_length=1, description="External user ids (at most settings.max_batch_users).")
    n: JsonInt = Field(20, ge=1, description="Items per user (at most settings.max_n).")
    exclude_seen: StrictBool = True
    exclude: list[str] = Field(default_factory=list, description="Item ids excluded for every user.")
    fallback: Literal["popular"] | None = Field(
        None, description="'popular': unknown users get the most popular items instead of an error entry."
    )
    items: list[str] | None = Field(
        None,
        description="Allow-list: rank only these item ids, for every user (unknown ids: ignored_items; absent: "
        "every item).",
    )
    where: list[str] | None = Field(
        None,
        description="Attribute filters column:value (| between alternative values), all of which must hold. Needs "
        "a model trained with an item attribute table.",
    )


class FoldInRecommendRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"items": ["1337", "7", "512"], "n": 10, "exclude_seen": True, "exclude": []}}
    )
    items: list[str] = Field(
        min_length=1,
        description="Item ids the visitor interacted with, most relevant first or in any order (at most "
        "settings.max_history_items); the visitor is folded in from them.",
    )
    n: JsonInt = Field(20, ge=1, description="Number of items (at most settings.max_n).")
    exclude_seen: StrictBool = Field(True, description="Drop the items of `items` from the answer.")
    exclude: list[str] = Field(default_factory=list, description="Further item ids to drop.")
    where: list[str] | None = Field(
        None,
        description="Attribute filters column:value (| between alternative values), all of which must hold. Needs "
        "a model trained with an item attribute table.",
    )


class FoldInRecommendResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "items": [{"item_id": "1338", "score": 3.2}, {"item_id": "9", "score": 2.9}],
                "model_version": "20250101T120000000000Z-c2f",
                "strategy": "fold_in",
                "ignored_items": [],
                "ignored_exclude": [],
            }
        },
    )
    items: list[ScoredItem]
    model_version: str
    strategy: Literal["fold_in", "popular"] = Field(
        description="'fold_in': ranked for a vector folded in from `items`; 'popular': none of `items` is known "
        "to the model, so the most popular items answer."
    )
    ignored_items: list[str] = Field(
        default_factory=list, description="Ids in `items` the model does not know (not used for the fold-in)."
    )
    ignored_exclude: list[str] = Field(default_factory=list)


class BatchRecommendEntry(BaseModel):
    user_id: str
    items: list[ScoredItem] = Field(default_factory=list)
    strategy: Strategy | None = None
    error: ErrorBody | None = Field(None, description="Set (with code unknown_user) when this user failed.")


class BatchRecommendResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "model_version": "20250101T120000000000Z-c2f",
                "results": [
                    {"user_id": "42", "items": [{"item_id": "1337", "score": 4.21}], "strategy": "model"},
                    {
                        "user_id": "nobody",
                        "items": [],
                        "strategy": None,
                        "error": {"code": "unknown_user", "message": "unknown user id 'nobody'"},
                    },
                ],
                "ignored_exclude": [],
                "ignored_items": [],
            }
        },
    )
    model_version: str
    results: list[BatchRecommendEntry]
    ignored_exclude: list[str] = Field(default_factory=list)
    ignored_items: list[str] = Field(default_factory=list, description="Ids in `items` the model does not know.")


class InteractionEvent(BaseModel):
    user_id: str = Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="External user id: a user the model trained, or a new one (folded in from its events).",
    )
    item_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="External item id of the served model.")
    ts: Annotated[float | str | None, BeforeValidator(_json_number_or_string)] = Field(
        None,
        description="When it happened: seconds since the Unix epoch, or an ISO 8601 time (UTC when it names no "
        "zone); absent: when the service records it. Anything else refuses this event (invalid_timestamp).",
    )


class InteractionsRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "events": [
                    {"user_id": "42", "item_id": "1337", "ts": 1735732800},
                    {"user_id": "new-visitor-7", "item_id": "7", "ts": "2025-01-01T12:00:00Z"},
                ]
            }
        }
    )
    events: list[InteractionEvent] = Field(
        min_length=1, description="The events, in the order they happened (at most settings.max_events_per_request)."
    )


class EventResult(BaseModel):
    id: str | None = Field(None, description="The event's entry in the dataset's event stream (recorded events).")
    error: ErrorBody | None = Field(
        None,
        description="Why this event was refused (nothing of it is recorded): unknown_item, invalid_timestamp, "
        "folded_users_full (the cap of new users) or user_history_full (the cap of one user's added items).",
    )


class InteractionsResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "model_version": "20250101T120000000000Z-c2f",
                "recorded": 1,
                "refused": 1,
                "results": [
                    {"id": "1735732800123-0", "error": None},
                    {"id": None, "error": {"code": "unknown_item", "message": "unknown item id 'nope'"}},
                ],
            }
        },
    )
    model_version: str = Field(description="The version the events were checked against and applied to.")
    recorded: int = Field(description="Events recorded (durably, in Redis) and applied.")
    refused: int = Field(description="Events refused, each with its error in `results`.")
    results: list[EventResult] = Field(description="One per event, in the order of the request.")


class EventsFootprint(BaseModel):
    """What recorded events cost this process (not embedding bytes; counted here)."""

    configured: bool = Field(description="False without Redis: no events are recorded or read.")
    stream: str | None = Field(description="The Redis stream of the served model's dataset.")
    folded_users: int = Field(description="Users the model never trained, folded in from their events.")
    max_folded_users: int = Field(description="The cap of folded_users (C2F_MAX_FOLDED_USERS); past it: refused.")
    users_with_events: int = Field(description="Users the model trained whose events moved their vector.")
    event_items: int = Field(description="Item indices the events added, all users together.")
    max_items_per_user: int = Field(description="The cap of one user's added items (C2F_MAX_HISTORY_ITEMS).")
    bytes: int = Field(description="Bytes this process holds for them (vectors, item indices, ids, entries).")
    position: str | None = Field(description="The last stream entry read into this process.")
    refused: int = Field(description="Events read back from the stream that a cap kept out here.")
    skipped: int = Field(description="Events read back whose item the served model does not know.")
    stale: bool = Field(description="True when Redis could not be read lately (the events read so far apply).")
    last_read_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None


class SimilarItemsResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "item_id": "1337",
                "items": [{"item_id": "7", "score": 0.93}],
                "model_version": "20250101T120000000000Z-c2f",
                "ignored_exclude": [],
                "ignored_items": [],
            }
        },
    )
    item_id: str
    items: list[ScoredItem] = Field(description="Cosine neighbours, best first; score is the cosine similarity.")
    model_version: str
    ignored_exclude: list[str] = Field(default_factory=list, description="Ids in `exclude` the model does not know.")
    ignored_items: list[str] = Field(default_factory=list, description="Ids in `items` the model does not know.")


class HiddenItemsStatus(BaseModel):
    """This process's copy of the hidden items (refreshed from Redis in the background)."""

    count: int = Field(description="Hidden item ids.")
    version: int | None = Field(description="The Redis state's change counter this copy is at (None: never read).")
    bytes: int = Field(description="Bytes this process holds for them (the id set and the current model's indices).")
    configured: bool = Field(description="False without Redis: nothing can be hidden.")
    stale: bool = Field(description="True when Redis could not be read lately: the last known set is in force.")
    last_refresh_at: str | None = Field(description="Last successful read of Redis.")
    refresh_age_seconds: float | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    refresh_seconds: float
    max_hidden_items: int


class HiddenItemsResponse(HiddenItemsStatus):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "items": ["1337", "7"],
                "count": 2,
                "version": 5,
                "bytes": 392,
                "configured": True,
                "stale": False,
                "last_refresh_at": "2025-01-01T12:00:05Z",
                "refresh_age_seconds": 0.2,
                "last_error": None,
                "last_error_at": None,
                "refresh_seconds": 0.5,
                "max_hidden_items": 100000,
            }
        }
    )
    items: list[str] = Field(description="The hidden item ids, sorted.")


class HiddenItemChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"item_id": "1337", "hidden": True, "changed": True, "count": 3, "version": 6}}
    )
    item_id: str
    hidden: bool = Field(description="Whether the item is hidden now.")
    changed: bool = Field(description="False when it already was (PUT) or was not (DELETE) hidden.")
    count: int = Field(description="Hidden items after the change.")
    version: int | None = Field(description="The Redis state's change counter after the change.")


class CatalogFootprint(BaseModel):
    """What the live catalog costs this process, apart from the model's embeddings."""

    hidden_items: int = Field(description="Hidden item ids in this process's copy.")
    hidden_bytes: int = Field(description="Bytes of that copy (ids and the served model's item indices).")
    hidden_stale: bool
    attribute_columns: list[str] = Field(description="The model's item attribute columns (none: no table).")
    attribute_values: dict[str, int] = Field(description="Distinct values per attribute column.")
    attribute_bytes: int = Field(description="Bytes of the attribute table (its four arrays, as loaded).")


class FootprintResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_version: str
    method: str
    serving_mode: str = Field(description="Configured mode: compressed or exact.")
    scoring: str = Field(
        description="What the scorer actually reads: 'compressed' (S_c + H_meta), 'pq' (product-quantized codes "
        "and codebooks) or 'dense' (an (N, d) table: ud's stored one, or reconstructed at load in exact mode and, "
        "in every mode, for hash and qr)."
    )
    n_users: int
    n_items: int
    d: int
    components: dict[str, int] = Field(description="Bytes per component as loaded from the artifact.")
    arrays: dict[str, int] = Field(description="Bytes per array as loaded.")
    derived: dict[str, int] = Field(description="Bytes the scorer derives at load (norms, exact-mode H_full).")
    dtypes: dict[str, str] = Field(
        default_factory=dict, description="Each array's stored dtype (float16/uint16 when stored compactly)."
    )
    total_bytes: int = Field(description="All artifact arrays as stored.")
    loaded_bytes: int = Field(description="= in_memory_bytes.")
    stored_bytes: int = Field(description="Bytes of the artifact's arrays as stored (their dtypes), = total_bytes.")
    in_memory_bytes: int = Field(
        description="Bytes the served model holds: the stored arrays its serving mode reads (the others are freed "
        "at load) plus what the scorer derives at load (e.g. a float16 codebook upcast to float32)."
    )
    embedding_bytes: int
    compressed_serving_bytes: int | None = None
    serving_memory_bytes: int | None = Field(
        None,
        description="Bytes compressed serving holds to score, every method: the served form or stored table (the "
        "float32 (N, d) table hash and qr rebuild), item biases; arrays only exact mode reads are freed at load.",
    )
    served_terms: int | None = Field(None, description="(index, weight) terms per entity of the compressed form.")
    served_form: str | None = Field(
        None, description="'sparse' (served_terms terms), 'pq' (pq_subspaces codes) or 'sparse+pq' (their sum)."
    )
    pq_subspaces: int | None = Field(None, description="uint8 codes per entity of the product-quantized form.")
    served_users: str = Field(
        "stored",
        description="'stored': compressed serving holds each user's row; 'fold_in': the items' rows alone, every "
        "user served the vector folded in from its items with the map stored at training (served_users).",
    )
    params_paper: int = Field(description="Embedding parameters in the paper's convention (Table 3).")
    e_r_nnz: int
    full_table_params: int
    full_table_bytes: int = Field(description="float32 N·d bytes of the equivalent full table.")
    compression_ratio_params: float | None = Field(description="N·d / params_paper (times smaller).")
    compression_ratio_bytes: float | None = Field(description="full_table_bytes / embedding_bytes.")
    metrics: dict[str, Any] = Field(description="The manifest's metrics: trained and served (compressed/exact).")
    process_rss_bytes: int
    catalog: CatalogFootprint | None = Field(
        None, description="Hidden items and the item attribute table (not embedding bytes; counted here)."
    )
    events: EventsFootprint | None = Field(
        None, description="Users folded in or moved by recorded events (POST /interactions), and their bytes."
    )


class LiveResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    status: Literal["ready"] = "ready"
    model_version: str
    hidden_items: HiddenItemsStatus | None = Field(
        None, description="The hidden items in force here; stale: Redis unreadable, the last known set applies."
    )


class LoadedModelInfo(BaseModel):
    version: str
    method: str
    serving_mode: str
    scoring: str
    n_users: int
    n_items: int
    d: int
    created_at: str | None = None
    loaded_at: str
    load_seconds: float
    path: str = Field(description="The version's directory, relative to the artifact root.")


class ModelsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "loaded": {
                    "version": "20250101T120000000000Z-c2f",
                    "method": "c2f",
                    "serving_mode": "compressed",
                    "scoring": "compressed",
                    "n_users": 29858,
                    "n_items": 40981,
                    "d": 64,
                    "created_at": "2025-01-01T12:00:00Z",
                    "loaded_at": "2025-01-01T12:00:05Z",
                    "load_seconds": 0.4,
                    "path": "versions/20250101T120000000000Z-c2f",
                },
                "latest": "20250101T120000000000Z-c2f",
                "available": ["20250101T120000000000Z-c2f"],
                "serving_mode": "compressed",
                "last_error": None,
                "failed_version": None,
                "last_error_at": None,
                "last_reload_at": "2025-01-01T12:00:05Z",
                "reload_failures": 0,
                "polling_seconds": 5.0,
            }
        }
    )
    loaded: LoadedModelInfo | None
    latest: str | None = Field(description="The version LATEST points to (may differ from loaded on failure).")
    available: list[str]
    serving_mode: str
    last_error: str | None
    failed_version: str | None
    last_error_at: str | None
    last_reload_at: str | None
    reload_failures: int
    polling_seconds: float


class ReloadResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    changed: bool = Field(description="True when a different version is now served.")
    model_version: str | None
    previous_version: str | None


JobState = Literal["queued", "started", "finished", "failed", "canceled"]


class JobInfo(BaseModel):
    """One training job as ``GET /jobs/{id}`` shows it (dataset paths relative to the data root)."""

    model_config = ConfigDict(protected_namespaces=(), extra="allow")
    job_id: str
    status: JobState
    method: str | None = None
    dataset_uri: str | None = None
    params: dict[str, Any] | None = None
    stage: str | None = None
    epoch: int | None = None
    loss: float | None = None
    valid: dict[str, Any] | None = None
    elapsed_seconds: float | None = Field(None, description="Seconds from start to end (or to now while running).")
    enqueued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    model_version: str | None = Field(None, description="The version the job published (finished jobs).")
    metrics: dict[str, Any] | None = None
    error: str | None = Field(None, description="Why a failed or canceled job ended, in one readable line.")
    position: int | None = Field(None, description="Place in the queue (queued jobs).")


class JobList(BaseModel):
    jobs: list[JobInfo]


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["queued", "canceled", "canceling"]
