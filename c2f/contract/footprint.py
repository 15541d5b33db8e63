"""Footprint accounting: bytes per component and per array, the paper's parameter count, compression ratios."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from c2f.contract.dtypes import dtype_names, target_dtype
from c2f.contract.manifest import Footprint
from c2f.contract.methods import FOLD_IN_ARRAYS, NON_EMBEDDING_COMPONENTS, OPTIONAL_ARRAYS, MethodSpec, get_spec
from c2f.contract.served import PQForm, SparseForm, SparsePQForm, form_class


def params_paper(
    method: str,
    n_entities: int,
    d: int,
    *,
    m_c: int = 0,
    t_c: int = 0,
    m_r: int = 0,
    t_r: int = 0,
    **sizes: int,
) -> int:
    """Embedding-layer parameters in the paper's convention (Table 3); the formula is the method spec's.

    ud: N·d;  legcf: t_c·N + m_c·d;  c2f: t_c·N + m_c·d + m_r·d + t_r·m_c (E^r counted dense, as in Table 3);
    hash: B·d (``B=``);  qr: (rows_Q + rows_R)·d (``qr_q=``, ``qr_m=``).
    """
    dims = {"N": n_entities, "d": d, "m_c": m_c, "t_c": t_c, "m_r": m_r, "t_r": t_r, **sizes}
    return get_spec(method).params_paper(dims)


def component_bytes(spec: MethodSpec, per_array: Mapping[str, int]) -> dict[str, int]:
    """Bytes per footprint component from bytes per array (arrays no component lists go to ``other``)."""
    components: dict[str, int] = {}
    listed: set[str] = set()
    for comp, names in spec.all_components().items():
        present = [n for n in names if n in per_array]
        listed.update(present)
        if present:
            components[comp] = sum(per_array[n] for n in present)
    other = sum(b for n, b in per_array.items() if n not in listed)
    if other:
        components["other"] = other
    return components


def embedding_bytes_of(components: Mapping[str, int]) -> int:
    """Embedding bytes: every component except the id maps, the seen-items graph and the item attribute table."""
    return sum(b for c, b in components.items() if c not in NON_EMBEDDING_COMPONENTS)


def planned_array_bytes(method: str, config: Any, n_users: int, n_items: int) -> dict[str, int]:
    """Bytes of each embedding array (and ``item_bias`` when ``config.biases``, the product-quantized part when
    ``config.pq_subspaces``) that training ``config`` on
    ``n_users`` + ``n_items`` entities would publish, from the spec's symbolic shapes and stored itemsizes; no
    training: the stored dtypes follow :func:`contract.dtypes.target_dtype` (``config.store_dtype``, compact
    indices), as the trainer's export does. Free-length arrays (c2f's sparse E^r) count at their upper bound
    (dense)."""
    spec = get_spec(method)
    dims = spec.planned_dims(config, n_users, n_items)
    lengths = spec.planned_lengths(dims)
    # the method's arrays in the dtypes export stores them in; optional ones (item biases) as their spec says
    wanted = {
        name: (want, target_dtype(name, want.accepts, dims, config.store_dtype)) for name, want in spec.arrays.items()
    }
    if config.biases:
        wanted["item_bias"] = (OPTIONAL_ARRAYS["item_bias"], None)
    if getattr(config, "pq_subspaces", 0):  # c2f/trainer/quantize.py: 256 centroids a subspace
        pq_m = int(config.pq_subspaces)
        dims = {**dims, "pq_m": pq_m, "pq_k": 256, "pq_w": dims["d"] // pq_m}
        wanted["pq_codes"] = (OPTIONAL_ARRAYS["pq_codes"], None)
        wanted["pq_codebooks"] = (OPTIONAL_ARRAYS["pq_codebooks"], np.dtype(config.store_dtype))
        if getattr(config, "item_norms_served", False):
            wanted["pq_item_scale"] = (OPTIONAL_ARRAYS["pq_item_scale"], np.dtype(config.store_dtype))
    if getattr(config, "served_users", "stored") == "fold_in":
        wanted.update({name: (OPTIONAL_ARRAYS[name], None) for name in FOLD_IN_ARRAYS})
    out: dict[str, int] = {}
    for name, (want, stored) in wanted.items():
        itemsize = stored.itemsize if stored is not None else want.itemsize
        if itemsize is None:
            raise ValueError(f"{method}: array {name!r} has no fixed itemsize to plan with")
        count = 1
        for sym in want.shape:
            count *= lengths[name] if sym is None else dims[sym]
        out[name] = count * itemsize
    return out


def serving_memory_bytes(
    spec: MethodSpec, per_array: Mapping[str, int], n_entities: int, d: int, n_users: int = 0
) -> int:
    """Bytes compressed-mode serving holds to score (:attr:`Footprint.serving_memory_bytes`), from the stored bytes
    of each array (``per_array``): those of the arrays its served form reads (:mod:`contract.served`), or the
    (N, d) float32 table hash and qr rebuild at load, plus item biases. The service frees every other array once
    its form is built (``c2f/service/scoring.py``). With users folded in (the fold-in map stored), per-entity arrays
    count their ``n_entities - n_users`` item rows only."""
    form = form_class(spec, per_array.keys(), "compressed")
    return form.held_bytes(spec, per_array, n_entities, d, n_users=n_users)


def planned_serving_bytes(method: str, config: Any, n_users: int, n_items: int) -> int:
    """:attr:`Footprint.serving_memory_bytes` that training ``config`` would publish (see
    :func:`planned_array_bytes`)."""
    per_array = planned_array_bytes(method, config, n_users, n_items)
    return serving_memory_bytes(get_spec(method), per_array, n_users + n_items, int(config.dim), n_users=n_users)


def planned_embedding_bytes(method: str, config: Any, n_users: int, n_items: int) -> int:
    """:attr:`Footprint.embedding_bytes` that training ``config`` would publish (see :func:`planned_array_bytes`):
    the same grouping as :func:`footprint`, so a plan and the published artifact are counted alike."""
    per_array = planned_array_bytes(method, config, n_users, n_items)
    return embedding_bytes_of(component_bytes(get_spec(method), per_array))


def footprint(arrays: Mapping[str, np.ndarray], method: str) -> Footprint:
    """Sizes of a ``method`` model from its arrays: bytes per component and per array as stored, paper-convention
    params, ratios.

    Ratios are "times smaller than the float32 full table" (full / compressed; 1.0 for ud):
    ``compression_ratio_params = N·d / params_total`` (params_total = params_paper + item biases, which the paper
    does not count but a model that has them needs) and
    ``compression_ratio_bytes = full_table_bytes / embedding_bytes`` where ``embedding_bytes`` counts every
    stored embedding array (everything except id maps, the seen-items graph and item attributes).
    ``compressed_serving_bytes`` is what compressed-mode scoring reads (S_c_idx_served, S_c_w_served, H_meta, and
    pq_codes, pq_codebooks when present); ``serving_memory_bytes`` what compressed-mode serving holds, for every method
    (:func:`serving_memory_bytes`).  Bytes are as stored: a float16 or uint16 array counts 2 bytes an entry
    (``dtypes`` names each array's type); the full table stays float32.
    """
    spec = get_spec(method)
    dims = spec.dims(arrays)
    per_array = {name: int(arr.nbytes) for name, arr in arrays.items()}
    components = component_bytes(spec, per_array)
    n_entities, d = dims["N"], dims["d"]
    folded = form_class(spec, arrays.keys(), "compressed").folds_in_users(arrays.keys())
    params = spec.params_paper(dims)
    params_biases = int(arrays["item_bias"].shape[0]) if "item_bias" in arrays else 0
    full_params = n_entities * d
    full_bytes = full_params * 4
    embedding_bytes = embedding_bytes_of(components)
    return Footprint(
        method=method,
        n_users=dims["n_users"],
        n_items=dims["n_items"],
        n_entities=n_entities,
        d=d,
        m_c=dims.get("m_c", 0),
        t_c=dims.get("t_c", 0),
        m_r=dims.get("m_r", 0),
        t_r=dims.get("t_r", 0),
        components=components,
        arrays=per_array,
        dtypes=dtype_names(arrays),
        total_bytes=sum(per_array.values()),
        embedding_bytes=embedding_bytes,
        params_paper=params,
        params_biases=params_biases,
        params_total=params + params_biases,
        full_table_params=full_params,
        full_table_bytes=full_bytes,
        compression_ratio_params=full_params / (params + params_biases) if params else None,
        compression_ratio_bytes=full_bytes / embedding_bytes if embedding_bytes else None,
        serving_memory_bytes=serving_memory_bytes(spec, per_array, n_entities, d, n_users=dims["n_users"]),
        served_users="fold_in" if folded else "stored",
        **served_form_extras(spec, arrays, dims),
    )


def served_form_extras(spec: MethodSpec, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, Any]:
    """The method's footprint extras, with a compressed served form (:mod:`contract.served`) named: "sparse"
    (S_c_idx_served, S_c_w_served, H_meta), "pq" (pq_codes, pq_codebooks; methods without a sparse form) or
    "sparse+pq" (both, summed), and the bytes of every array it reads; none for a table (ud) or exact serving."""
    extras = spec.footprint_extras(arrays, dims)
    form = form_class(spec, arrays.keys(), "compressed")
    if form not in (SparseForm, SparsePQForm, PQForm):
        return extras
    serving = sum(int(arrays[name].nbytes) for name in form.reads(spec, arrays.keys()))
    return {
        **extras,
        "served_form": form.name,
        **({"pq_subspaces": dims["pq_m"]} if "pq_m" in dims else {}),
        "compressed_serving_bytes": serving,
        "compression_ratio_serving_bytes": dims["N"] * dims["d"] * 4 / serving if serving else None,
    }


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``1.5 KiB`` (``–`` for None)."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover
