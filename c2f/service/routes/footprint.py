"""GET /footprint: memory of the served model, the paper's parameter count and the trained/served metrics, and what
recorded interaction events add to it in this process (``events``: users folded in or moved, their bytes, the caps)."""

from __future__ import annotations

import psutil
from fastapi import APIRouter, Request

from c2f.service.catalog import HiddenItems
from c2f.service.deps import CatalogDep, ModelDep
from c2f.service.registry import LoadedModel
from c2f.service.schemas import CatalogFootprint, ErrorResponse, FootprintResponse

router = APIRouter(tags=["footprint"])


@router.get(
    "/footprint",
    response_model=FootprintResponse,
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet (code no_model)."}},
    summary="Sizes of the served model vs. its full-table equivalent",
)
async def get_footprint(model: ModelDep, catalog: CatalogDep, request: Request) -> FootprintResponse:
    artifact, rec = model.artifact, model.recommender
    fp = artifact.footprint  # of every array as loaded
    derived = rec.memory_bytes()
    kept = sum(int(arr.nbytes) for arr in artifact.arrays.values())  # the stored arrays serving keeps
    in_memory = kept + sum(derived.values())
    metrics = artifact.manifest.metrics
    return FootprintResponse(
        model_version=model.version,
        method=artifact.method,
        serving_mode=rec.mode,
        scoring=rec.scoring,
        n_users=artifact.n_users,
        n_items=artifact.n_items,
        d=artifact.d,
        components=fp.components,
        arrays=fp.arrays,
        derived=derived,
        dtypes=fp.dtypes,
        total_bytes=fp.total_bytes,
        loaded_bytes=in_memory,
        stored_bytes=fp.total_bytes,
        in_memory_bytes=in_memory,
        embedding_bytes=fp.embedding_bytes,
        compressed_serving_bytes=fp.compressed_serving_bytes,
        serving_memory_bytes=fp.serving_memory_bytes,
        served_terms=fp.served_terms,
        served_form=fp.served_form,
        pq_subspaces=fp.pq_subspaces,
        served_users=fp.served_users,
        params_paper=fp.params_paper,
        e_r_nnz=fp.e_r_nnz,
        full_table_params=fp.full_table_params,
        full_table_bytes=fp.full_table_bytes,
        compression_ratio_params=fp.compression_ratio_params,
        compression_ratio_bytes=fp.compression_ratio_bytes,
        metrics=metrics.as_reported(),
        process_rss_bytes=psutil.Process().memory_info().rss,
        catalog=catalog_footprint(model, catalog),
        events=request.app.state.events.status(model),
    )


def catalog_footprint(model: LoadedModel, catalog: HiddenItems) -> CatalogFootprint:
    """The hidden items this process holds and the served model's item attribute table (GET /footprint, the
    status page)."""
    catalog.indices(model.recommender)  # the served model's indices, counted in the bytes
    hidden = catalog.status()
    attributes = model.recommender.attributes
    return CatalogFootprint(
        hidden_items=hidden["count"],
        hidden_bytes=hidden["bytes"],
        hidden_stale=hidden["stale"],
        attribute_columns=attributes.names if attributes is not None else [],
        attribute_values=attributes.value_counts() if attributes is not None else {},
        attribute_bytes=attributes.nbytes if attributes is not None else 0,
    )
