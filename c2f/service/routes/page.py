"""GET / (a server-rendered status page) and GET /models/{version}/curve.png (a version's training curve).

The page reads everything through the app: the served model from ``app.state.registry``, its footprint exactly as
``GET /footprint`` computes it, the manifest's trained and served metrics, and recent jobs from ``c2f.service.jobs``.
It renders whatever is available: no model loaded, or Redis down, still gives a page (with a note in place of the
missing part). No JavaScript build: one Jinja2 template with inline CSS, an inline SVG bar chart and a few lines of
``fetch()`` for the recommendation form. Recorded interaction events get a line under the footprint (users folded in
or moved, their bytes, the caps: ``GET /footprint``'s ``events``), and so does the live catalog (hidden items and
the item attribute table, as ``GET /footprint``'s ``catalog``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from c2f.contract.artifact import ArtifactError, version_path
from c2f.contract.footprint import human_bytes
from c2f.contract.manifest import Footprint, Manifest, ModelMetrics
from c2f.service import budget_plot
from c2f.service.errors import NOT_FOUND, ApiError
from c2f.service.offload import Busy
from c2f.service.redact import scrub
from c2f.service.routes.footprint import catalog_footprint

logger = logging.getLogger("c2f.service")

router = APIRouter(tags=["page"])

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
CURVE_FILE = "curve.png"
RECENT_JOBS = 10

# Bar chart geometry (SVG user units).
_CHART_WIDTH = 880
_LABEL_WIDTH = 250
_BAR_MAX = 470
_BAR_HEIGHT = 26
_BAR_GAP = 12

_COMPONENT_LABELS = {
    "full_table": "H_full dense table",
    "layer0_table": "E layer-0 table",
    "S_c": "S_c assignment (indices + weights)",
    "S_r": "S_r coarse-to-fine assignment",
    "codebooks": "codebooks (H_meta, E_c)",
    "E_r": "S_λ(E_r) sparse fine codebook",
    "id_maps": "external id maps",
    "graph": "seen-items graph (CSR)",
    "attributes": "item attribute table",
    "other": "other arrays",
}


def footprint_bars(fp: Footprint) -> list[dict[str, Any]]:
    """The bars of the footprint chart: the float32 full table, what the model stores and what compressed serving
    holds (the served form, a rebuilt table, item biases)."""
    full = fp.full_table_bytes
    rows: list[tuple[str, str, int | None, str]] = [
        ("full", "float32 full table (N×d)", full, "full"),
        ("embedding", "stored embedding arrays", fp.embedding_bytes, "model"),
        (
            "serving",
            "held by compressed serving" + (" (items; users folded in)" if fp.served_users == "fold_in" else ""),
            fp.serving_memory_bytes,
            "serving",
        ),
    ]
    biggest = max(v for _, _, v, _ in rows if v is not None) or 1
    bars = []
    y = 0
    for key, label, value, css in rows:
        if value is None:
            continue
        value = int(value)
        width = max(2.0, _BAR_MAX * value / biggest)
        ratio = full / value if value else None
        bars.append(
            {
                "key": key,
                "label": label,
                "bytes": value,
                "human": human_bytes(value),
                "ratio": ratio,
                "y": y,
                "width": round(width, 1),
                "css": css,
            }
        )
        y += _BAR_HEIGHT + _BAR_GAP
    return bars


def _metric_sort_key(name: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"([a-z_]+)@(\d+)", name)
    return (m.group(1), int(m.group(2)), "") if m else (name, 0, name)


def metrics_table(manifest: Manifest) -> dict[str, Any]:
    """Rows metric -> {trained, compressed, exact} from ``metrics.trained.test`` and ``metrics.served``."""
    metrics = manifest.metrics
    trained = metrics.test("trained")
    compressed = metrics.test("compressed")
    exact = metrics.test("exact")
    columns = [("trained", "trained (test)", trained)]
    if compressed:
        columns.append(("compressed", "served compressed (test)", compressed))
    if exact:
        columns.append(("exact", "served exact (test)", exact))
    # ranking metrics only ("recall@20", "ndcg@10", ...): counts such as n_users are not scores
    names = sorted({k for _, _, col in columns for k in col if re.fullmatch(r"[a-z_]+@\d+", k)}, key=_metric_sort_key)
    rows = []
    for name in names:
        values = {key: col.get(name) for key, _, col in columns}
        rows.append({"name": name, "values": values})
    return {"columns": [(key, title) for key, title, _ in columns], "rows": rows}


def _curve_exists(root: str | Path, version: str | None) -> bool:
    if not version:
        return False
    try:
        return (version_path(root, version) / CURVE_FILE).is_file()
    except (ArtifactError, OSError):
        return False


def _job_summary(job: dict[str, Any]) -> str:
    """One line of progress or outcome for the jobs table."""
    status = job.get("status")
    if status in ("failed", "canceled"):
        return str(job.get("error") or status)
    if status == "finished":
        metrics = ModelMetrics.model_validate(job.get("metrics") or {})
        served = metrics.test("compressed")
        test = served or metrics.test("trained")
        if test.get("recall@20") is not None:
            which = "served" if served else "trained"
            return f"{which} test recall@20 {test['recall@20']:.4f}, ndcg@20 {test.get('ndcg@20', 0.0):.4f}"
        return "published"
    if status == "queued":
        position = job.get("position")
        return f"queued (position {position})" if position is not None else "queued"
    parts = [str(job.get("stage") or "starting")]
    if job.get("epoch"):
        parts.append(f"epoch {job['epoch']}")
    if job.get("loss") is not None:
        parts.append(f"loss {job['loss']:.4f}")
    ndcg = (job.get("valid") or {}).get("ndcg@20")
    if ndcg is not None:
        parts.append(f"valid ndcg@20 {ndcg:.4f}")
    return " · ".join(parts)


async def recent_jobs(request: Request, settings: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Up to RECENT_JOBS jobs, newest first, or ([], why not) when the queue cannot be read (in time)."""
    if settings is None:
        return [], "no settings on the app"
    try:
        from c2f.service import jobs as job_queue
    except Exception as exc:  # noqa: BLE001 - the page renders without the jobs module
        return [], f"job queue support is not available ({exc})"
    pool = request.app.state.job_pool
    try:
        listed = await pool.run(2 * settings.redis_timeout_seconds, job_queue.list_jobs, settings, limit=RECENT_JOBS)
    except job_queue.QueueUnavailable as exc:
        return [], scrub(str(exc), settings)
    except (TimeoutError, Busy):
        return [], "the job queue did not answer in time"
    except Exception as exc:  # noqa: BLE001 - Redis trouble must never break the status page
        logger.warning("status page: listing jobs failed: %s", exc)
        return [], f"cannot list jobs: {type(exc).__name__}"
    root = settings.artifact_root
    out = []
    for job in listed:
        version = job.get("model_version")
        try:
            summary = _job_summary(job)
        except (TypeError, ValueError, AttributeError):  # odd meta written by something else: show the state
            summary = str(job.get("status") or "")
        out.append({**job, "curve": _curve_exists(root, version), "summary": summary})
    return out, None


def budget_context(directory: Path, model: Any) -> dict[str, Any] | None:
    """The equal-memory plot (c2f/service/budget_plot.py) with the served model's point: its bytes counted as the
    benchmark's points count them (what serving holds when every point was sized by ``--counts served``, else its
    stored embedding bytes) and its served Recall@20 in the mode it is served in (trained, when the manifest has
    no served figure)."""
    points = budget_plot.read_points(Path(directory))
    counting_served = bool(points) and all(p["counts"] == "served" for p in points)
    served = None
    if model is not None:
        metrics = model.artifact.manifest.metrics
        mode = getattr(model.recommender, "mode", "compressed")
        test = metrics.test(mode) or metrics.test("trained")
        if test.get("recall@20") is not None:
            served = {
                "bytes": int(
                    (model.artifact.footprint.serving_memory_bytes if counting_served else None)
                    or model.artifact.footprint.embedding_bytes
                ),
                "recall": float(test["recall@20"]),
                "version": model.version,
            }
    return budget_plot.geometry(points, served)


@router.get("/", response_class=HTMLResponse, summary="Status page: served model, footprint, metrics, jobs")
async def status_page(request: Request) -> HTMLResponse:
    state = request.app.state
    settings = getattr(state, "settings", None)
    registry = getattr(state, "registry", None)
    catalog = getattr(state, "catalog", None)
    events = getattr(state, "events", None)
    model = registry.current if registry is not None else None
    status: dict[str, Any] = {}
    if registry is not None:
        try:
            status = registry.status()
        except Exception as exc:  # noqa: BLE001
            status = {"last_error": f"{type(exc).__name__}: {exc}"}
        if status.get("last_error") and settings is not None:
            status["last_error"] = scrub(status["last_error"], settings)
    context: dict[str, Any] = {
        "model": None,
        "status": status,
        "settings": settings,
        "chart_width": _CHART_WIDTH,
        "label_width": _LABEL_WIDTH,
        "bar_height": _BAR_HEIGHT,
        "human_bytes": human_bytes,
        "component_labels": _COMPONENT_LABELS,
    }
    if model is not None:
        artifact = model.artifact
        manifest = artifact.manifest
        fp = artifact.footprint  # the same computation as GET /footprint
        bars = footprint_bars(fp)
        chart_height = (bars[-1]["y"] + _BAR_HEIGHT) if bars else 0
        context.update(
            model={
                "version": model.version,
                "method": artifact.method,
                "created_at": manifest.created_at,
                "loaded_at": model.loaded_at,
                "serving_mode": getattr(model.recommender, "mode", None),
                "scoring": getattr(model.recommender, "scoring", None),
                "n_users": artifact.n_users,
                "n_items": artifact.n_items,
                "d": artifact.d,
                "shape": manifest.shape.model_dump(),
                "dataset": manifest.dataset.model_dump(),
                "curve": (artifact.path / CURVE_FILE).is_file(),
                "example_user": str(artifact.arrays["user_ids"][0]) if artifact.n_users else "",
            },
            footprint=fp,
            catalog=catalog_footprint(model, catalog) if catalog is not None else None,
            hidden=catalog.status() if catalog is not None else {},
            events=events.status(model) if events is not None else None,
            bars=bars,
            chart_height=chart_height,
            metrics=metrics_table(manifest),
        )
    if settings is not None and settings.budget_results is not None:
        context["budget_plot"] = await run_in_threadpool(budget_context, settings.budget_results, model)
    jobs, jobs_error = await recent_jobs(request, settings)
    context.update(jobs=jobs, jobs_error=jobs_error)
    return TEMPLATES.TemplateResponse(request, "status.html", context)


@router.get(
    "/models/{version}/curve.png",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "The training curve of that version."},
        404: {"description": "Unknown or malformed version, or the version has no curve (code not_found)."},
    },
    summary="Training curve (PNG) of a published version",
)
def training_curve(request: Request, version: str) -> FileResponse:
    settings = request.app.state.settings
    try:
        path = version_path(settings.artifact_root, version) / CURVE_FILE
    except ArtifactError:
        raise ApiError(404, NOT_FOUND, f"invalid version name {version!r}") from None
    if not path.is_file():
        raise ApiError(404, NOT_FOUND, f"version {version} has no {CURVE_FILE}")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})
