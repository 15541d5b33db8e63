"""Trained model -> published artifact: arrays, served-weight refit, trained vs served metrics, training curve.

Serving reconstructs an entity from its t_c assignments without graph propagation (LEGCF's Eq. 10 view,
H_full ≈ S^c·H_meta). The trained weights S^c were fitted for layer 0, not for that identity, so at export the
weights of each entity are refit by least squares so that S^c·H_meta best matches the propagated H_full
(optionally alternating with a least-squares refit of the codebook itself); ``TrainConfig.served_terms`` sets how
many (index, weight) terms each entity is served from. Arrays are stored in the types of ``contract.dtypes``
(``TrainConfig.store_dtype``). Both the trained metrics (full propagation) and the served metrics (what the service
computes from the stored arrays, in both serving modes) are recorded.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from c2f.contract import foldin
from c2f.contract.artifact import publish, read_manifest, version_path
from c2f.contract.config import TrainConfig
from c2f.contract.dtypes import store_float, target_dtype
from c2f.contract.footprint import footprint
from c2f.contract.manifest import (
    DatasetInfo,
    EvaluationSample,
    Manifest,
    ModelMetrics,
    Shape,
    SplitMetrics,
    TrainedMetrics,
)
from c2f.contract.methods import exact_embeddings, get_spec
from c2f.contract.reconstruct import assignment_matrix, compressed_embeddings
from c2f.contract.served import ExactForm, ServedForm, SparseForm, form_class, served_form
from c2f.trainer.data import InteractionData
from c2f.trainer.evaluate import evaluate
from c2f.trainer.quantize import fit_pq, rotation_for
from c2f.trainer.refine import refine_codebooks
from c2f.trainer.train import TrainedModel


def refit_weights(S_idx: np.ndarray, H_meta: np.ndarray, H_full: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Per-row least squares: w_n = argmin ||Σ_j w_j·H_meta[S_idx[n, j]] − H_full[n]||² (tiny ridge).

    S_idx (N, t), H_meta (m, d), H_full (N, d) -> weights (N, t) float32. Batched t × t normal equations.
    """
    out = np.empty(S_idx.shape, dtype=np.float32)
    # a block of rows at a time: the float64 (rows, t, d) gather is 2.7 GB for 1.3M entities, t = 2, d = 128
    rows_per_block = max(1, (1 << 22) // max(S_idx.shape[1] * H_meta.shape[1], 1))
    for start in range(0, S_idx.shape[0], rows_per_block):
        block = slice(start, start + rows_per_block)
        G = H_meta[S_idx[block]].astype(np.float64)  # (rows, t, d)
        gram = np.einsum("ntd,nsd->nts", G, G)
        scale = np.trace(gram, axis1=1, axis2=2)[:, None, None] / S_idx.shape[1] + 1e-12
        gram += ridge * scale * np.eye(S_idx.shape[1])
        rhs = np.einsum("ntd,nd->nt", G, H_full[block].astype(np.float64))
        out[block] = np.linalg.solve(gram, rhs[..., None])[..., 0]
    return out


def refit_codebook(S_idx: np.ndarray, S_w: np.ndarray, H_full: np.ndarray, m: int, ridge: float = 1e-6) -> np.ndarray:
    """Codebook least squares: argmin_C ||S·C − H_full||_F² for a fixed sparse S (N, m). -> (m, d) float32."""
    S = assignment_matrix(S_idx, S_w, m)
    gram = np.asarray((S.T @ S).todense(), dtype=np.float64)
    gram += ridge * (np.trace(gram) / m + 1e-12) * np.eye(m)
    # Sᵀ·H_full in float64 a block of rows at a time: a float64 copy of H_full is 1.3 GB at 1.3M entities, d = 128
    rhs = np.zeros((m, H_full.shape[1]), dtype=np.float64)
    for start in range(0, H_full.shape[0], 65536):
        rows = slice(start, start + 65536)
        rhs += S[rows].T @ H_full[rows].astype(np.float64)
    return np.linalg.solve(gram, rhs).astype(np.float32)


def pursuit(H_full: np.ndarray, H_meta: np.ndarray, t: int, chunk: int = 65536) -> np.ndarray:
    """Greedy matching pursuit: for each row of H_full (N, d), t distinct codebook rows of H_meta (m, d) chosen one
    at a time by |correlation| with the current residual, with a least-squares refit after each pick.
    Returns (N, t) int64 indices. Chunked over rows: memory O(chunk · m)."""
    norms = np.linalg.norm(H_meta, axis=1) + 1e-12
    out = np.empty((H_full.shape[0], t), dtype=np.int64)
    for start in range(0, H_full.shape[0], chunk):
        H = H_full[start : start + chunk].astype(np.float32)
        rows = np.arange(H.shape[0])
        residual = H
        for j in range(t):
            corr = np.abs(residual @ H_meta.T) / norms
            corr[rows[:, None], out[start : start + len(rows), :j]] = -1.0  # each row picks distinct atoms
            out[start : start + len(rows), j] = corr.argmax(axis=1)
            chosen = out[start : start + len(rows), : j + 1]
            residual = H - compressed_embeddings(chosen, refit_weights(chosen, H_meta, H), H_meta)
    return out


ServedFit = str  # "weights" | "codebook" | "reassign"


def served_assignment(
    S_idx: np.ndarray,
    H_meta: np.ndarray,
    H_full: np.ndarray,
    fit: ServedFit = "reassign",
    rounds: int = 3,
    terms: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The assignment and codebook that compressed serving reads, fitted so that S·H_meta ≈ H_full.

    "weights": keep the trained indices, refit each entity's t weights (least squares).
    "codebook": also alternate with a least-squares refit of the codebook (``rounds`` times).
    "reassign": re-pick each entity's ``terms`` codebook rows by matching pursuit (greedy by correlation with the
    residual, least-squares weights after every pick), then alternate codebook refits and re-picks. The span of
    the picked codebook rows is all an entity can be served from, so picking the rows for serving (rather than
    reusing the rows chosen for layer 0) is what closes most of the served-vs-trained gap, and more terms close
    more of it. ``terms`` (None: t = S_idx.shape[1]) other than t needs "reassign".
    Returns (idx (N, terms) int32, w (N, terms) float32, H_meta (m, d) float32).
    """
    t = S_idx.shape[1] if terms is None else int(terms)
    if not 1 <= t <= H_meta.shape[0]:
        raise ValueError(f"served terms must be between 1 and m ({H_meta.shape[0]}); got {t}")
    if t != S_idx.shape[1] and fit != "reassign":
        raise ValueError(f"{t} served terms from {S_idx.shape[1]} trained ones needs fit='reassign', got {fit!r}")
    idx = S_idx.astype(np.int64)
    codebook = H_meta.astype(np.float32)
    if fit == "reassign":
        idx = pursuit(H_full, codebook, t)
    weights = refit_weights(idx, codebook, H_full)
    for _ in range(rounds if fit in ("codebook", "reassign") else 0):
        codebook = refit_codebook(idx, weights, H_full, codebook.shape[0])
        if fit == "reassign":
            idx = pursuit(H_full, codebook, t)
        weights = refit_weights(idx, codebook, H_full)
    return idx.astype(np.int32), weights, codebook.astype(np.float32)


def store_dtypes(arrays: dict[str, np.ndarray], method: str, store_dtype: str) -> dict[str, np.ndarray]:
    """``arrays`` in their stored types (:func:`contract.dtypes.target_dtype`): index arrays in the smallest unsigned
    type that holds their bound, the method's real embedding arrays (those the contract accepts as float16) in
    ``store_dtype``.
    ValueError naming the array when a value does not fit float16."""
    spec = get_spec(method)
    dims = spec.dims(arrays)
    out = dict(arrays)
    for name, want in spec.required_arrays().items():
        target = target_dtype(name, want.accepts, dims, store_dtype)
        if target is None:
            continue
        if target.kind in "iu":
            out[name] = arrays[name].astype(target)
        else:
            try:
                out[name] = store_float(arrays[name], store_dtype)
            except ValueError as exc:
                raise ValueError(f"store_dtype={store_dtype}: array {name} {exc}") from None
    return out


def _csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    return {
        f"{prefix}_indptr": matrix.indptr.astype(np.int64),
        f"{prefix}_indices": matrix.indices.astype(np.int32),
    }


def build_arrays(trained: TrainedModel, data: InteractionData) -> dict[str, np.ndarray]:
    """The model.npz arrays of the artifact contract for the trained method, with the product-quantized part of the
    served vectors when ``pq_subspaces`` > 0 (c2f/trainer/quantize.py): for methods with the sparse serving form it
    quantizes what that form leaves, H_full − S·H_meta as stored (in the original basis, so that the two parts
    add up); for the others the propagated vectors themselves (in the eigen-allocated rotated basis)."""
    arrays, H_full = _method_arrays(trained, data)
    config = trained.config
    # the map's targets: the trained users' exact vectors (H_full itself is freed before a codebook refinement)
    trained_users = H_full[: data.n_users].copy() if config.served_users == "fold_in" else None
    if config.pq_subspaces:
        sparse = _sparse_vectors(arrays, config.method)
        # with users folded in, only the items' rows are served: the centroids are fitted on them alone
        fit_rows = np.arange(data.n_users, H_full.shape[0]) if trained_users is not None else None
        if sparse is not None:
            # the residual in the decoded sparse vectors' own buffer: one (N, d) float32 temporary, not two
            target, rotation = np.subtract(H_full, sparse, out=sparse), np.eye(H_full.shape[1], dtype=np.float32)
        elif trained_users is not None:
            # the codes' rotated basis is the served items' basis: the users' fold-in targets move into it too
            target = H_full
            rotation = rotation_for(H_full, config.pq_subspaces, seed=config.seed, fit_rows=fit_rows)
            trained_users = trained_users @ rotation
        else:
            target, rotation = H_full, None
        arrays["pq_codes"], arrays["pq_codebooks"] = fit_pq(
            target,
            config.pq_subspaces,
            seed=config.seed,
            store_dtype=config.store_dtype,
            rotation=rotation,
            fit_rows=fit_rows,
        )
        del target
        if config.item_norms_served:
            arrays["pq_item_scale"] = item_norm_scale(arrays, config.method, H_full, config.store_dtype)
        if config.pq_refine_epochs:
            del H_full  # the refinement reads the served form only
            base = _sparse_vectors(arrays, config.method)
            device = next(trained.model.parameters()).device
            trained.info["pq_refine"] = refine_codebooks(arrays, base, data, config, device)
    if trained_users is not None:
        arrays.update(fold_in_map(arrays, config.method, trained_users, data, config.seed))
    return arrays


def fold_in_map(
    arrays: Mapping[str, np.ndarray], method: str, trained_users: np.ndarray, data: InteractionData, seed: int
) -> dict[str, np.ndarray]:
    """``fold_in_W`` (d, d) and ``fold_in_c`` (d,) float32: the map of :mod:`contract.foldin`'s default estimator
    from the least-squares estimate over the served items (``arrays``' compressed form) to the trained users'
    exact vectors ``trained_users`` (n_users, d), fitted on a seeded sample of users."""
    form = served_form(get_spec(method), arrays, "compressed")
    users = foldin.fitted(
        form.item_vectors, lambda rows: trained_users[rows], data.train, trained_users.shape[1], seed=seed
    )
    fitted_map = users.map_for(foldin.DEFAULT_BASE)
    return {"fold_in_W": fitted_map.W.astype(np.float32), "fold_in_c": fitted_map.c.astype(np.float32)}


def item_norm_scale(
    arrays: Mapping[str, np.ndarray], method: str, H_full: np.ndarray, store_dtype: str, chunk: int = 65536
) -> np.ndarray:
    """(n_items,) ``store_dtype`` ``pq_item_scale``: ‖exact item vector‖ / ‖served item vector‖ (1 where the served
    vector is 0), so that each item is served at its exact norm. The items' served vectors are decoded a block of
    ``chunk`` rows at a time."""
    form = served_form(get_spec(method), arrays, "compressed")  # the codes (on the sparse form), not yet scaled
    n_users, n_items = form.n_users, form.n_items
    scale = np.ones(n_items, dtype=np.float32)
    for start in range(0, n_items, chunk):
        rows = np.arange(n_users + start, n_users + min(start + chunk, n_items))
        served = np.linalg.norm(form.vectors(rows), axis=1)
        exact = np.linalg.norm(H_full[rows], axis=1)
        np.divide(exact, served, out=scale[start : start + rows.size], where=served > 0)
    return store_float(scale, store_dtype)


def _method_arrays(trained: TrainedModel, data: InteractionData) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The method's arrays (stored types) and the propagated H_full (N, d) float32 they were built from."""
    # methods.py builds on this module's served fit, so it is imported here rather than at the top
    from c2f.trainer.methods import get_trainer

    arrays: dict[str, np.ndarray] = {
        "user_ids": np.asarray(data.user_ids).astype(str),
        "item_ids": np.asarray(data.item_ids).astype(str),
        **_csr_arrays("graph", data.train),
        **_csr_arrays("heldout", data.valid),
    }
    model = trained.model
    # float32 already: asarray takes the tensor's memory instead of copying (N × d: 0.67 GB at 1.3M entities)
    H_full = np.asarray(model.full_embeddings().cpu().numpy(), dtype=np.float32)
    if model.item_bias is not None:
        arrays["item_bias"] = model.item_bias.detach().cpu().numpy().astype(np.float32)
    config = trained.config
    arrays.update(get_trainer(config.method).arrays(trained, H_full))
    arrays.update(data.item_attributes)  # the item attribute table, when the dataset has one (stored as encoded)
    return store_dtypes(arrays, config.method, config.store_dtype), H_full


def _evaluate_form(
    form: ServedForm, data: InteractionData, users: np.ndarray | None = None, label: str | None = None
) -> dict[str, float]:
    """Test metrics of the scores the service ranks with, h_u·h_i (+ b_i with item biases), from ``form``'s (N, d)
    vectors, over ``users`` (the trained model's test sample; None: every test user). A form that holds no user
    rows is evaluated as the service serves it: each evaluated user folded in from its training and validation items
    (the service's seen items) with the stored map."""
    H = form.vectors()
    n = data.n_users
    if form.fold_in_map is not None:
        items = H
        evaluated = np.flatnonzero(np.diff(data.test.indptr)) if users is None else np.asarray(users, dtype=np.int64)
        fold = foldin.stored(form.item_vectors, data.train, *form.fold_in_map)
        histories = sp.csr_matrix(data.train[evaluated] + data.valid[evaluated])
        user_vectors = np.zeros((n, items.shape[1]), dtype=np.float32)
        user_vectors[evaluated] = fold.vectors(histories)
    else:
        user_vectors, items = H[:n], H[n:]
    return evaluate(
        torch.from_numpy(user_vectors),
        torch.from_numpy(items),
        data.test,
        [data.train, data.valid],
        users=users,
        progress=label,
        item_bias=form.item_bias,
    )


def _sparse_vectors(arrays: Mapping[str, np.ndarray], method: str) -> np.ndarray | None:
    """(N, d) float32 vectors of the sparse serving form alone, as stored (legcf, c2f: what product-quantized codes
    add to); None for methods without one."""
    spec = get_spec(method)
    return SparseForm(spec, arrays).vectors() if spec.compressed else None


def served_metrics(
    arrays: Mapping[str, np.ndarray],
    manifest: Manifest,
    data: InteractionData,
    users: np.ndarray | None = None,
) -> dict[str, SplitMetrics]:
    """Test metrics of both serving modes, from the served forms the service builds (:mod:`contract.served`),
    over ``users`` (the trained figures' test sample, so that all three are paired on the same users; None: every
    test user)."""
    spec = get_spec(manifest.method)
    exact_form = served_form(spec, arrays, "exact", lambda: exact_embeddings(arrays, manifest))
    exact = _evaluate_form(exact_form, data, users, "test (served exact)")
    del exact_form  # its (N, d) table is not held while the compressed form is evaluated
    if form_class(spec, arrays.keys(), "compressed") is ExactForm:  # hash, qr without codes: served exactly
        compressed = exact
    else:
        compressed = _evaluate_form(served_form(spec, arrays, "compressed"), data, users, "test (served compressed)")
    return {"compressed": SplitMetrics(test=compressed), "exact": SplitMetrics(test=exact)}


def plot_curve(history: list[dict[str, Any]]) -> bytes:
    """PNG of training loss and validation NDCG@20 per epoch across stages; assignment updates marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ndcg) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    x = np.arange(1, len(history) + 1)
    ax_loss.plot(x, [r["loss"] for r in history], color="#1f77b4", lw=1.5)
    ax_loss.set_ylabel("BPR loss")
    evaluated = [(i + 1, r["valid"]["ndcg@20"]) for i, r in enumerate(history) if r.get("valid")]
    if evaluated:
        ex, ey = zip(*evaluated, strict=True)
        ax_ndcg.plot(ex, ey, color="#2ca02c", marker="o", ms=3, lw=1.5)
    ax_ndcg.set_ylabel("valid NDCG@20")
    ax_ndcg.set_xlabel("epoch (all stages)")
    for i, r in enumerate(history):
        if r.get("assignment_update"):
            for ax in (ax_loss, ax_ndcg):
                ax.axvline(i + 1, color="#d62728", alpha=0.25, lw=0.8)
        if i > 0 and (r["stage"], r["phase"]) != (history[i - 1]["stage"], history[i - 1]["phase"]):
            for ax in (ax_loss, ax_ndcg):
                ax.axvline(i + 0.5, color="black", ls="--", lw=0.8)
            ax_loss.annotate(
                f"{r['stage']} p{r['phase']}",
                (i + 1, 1.0),
                xycoords=("data", "axes fraction"),
                va="top",
                fontsize=8,
            )
    ax_loss.set_title("training curve (red: assignment updates, dashed: stage/phase changes)", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def build_manifest(trained: TrainedModel, data: InteractionData) -> Manifest:
    """Manifest fields the trainer owns (the artifact module adds versions, files and checksums)."""
    from c2f.trainer.methods import get_trainer  # as in _method_arrays

    config: TrainConfig = trained.config
    method = get_trainer(config.method)
    fields = get_spec(config.method).manifest_fields(config)
    return Manifest(
        method=config.method,
        dataset=DatasetInfo(uri=data.uri, content_hash=data.content_hash, stats=data.stats),
        config=config.to_dict(),
        shape=Shape(
            n_users=data.n_users,
            n_items=data.n_items,
            n_entities=data.n_users + data.n_items,
            d=config.dim,
            layers=config.layers,
            **fields["shape"],
        ),
        **{key: value for key, value in fields.items() if key != "shape"},  # w_cr, hash_seed, qr_combine
        soft_lambda=method.soft_lambda(trained),
        metrics=ModelMetrics(
            trained=TrainedMetrics(
                valid=trained.valid,
                test=trained.test,
                coarse_test=method.coarse_test(trained),
            ),
            history=trained.history,
            timings=trained.timings,
            evaluation={k: EvaluationSample(**v) for k, v in trained.evaluation.items()},
        ),
        info=trained.info,
    )


def export(trained: TrainedModel, data: InteractionData, out_root: str | Path) -> tuple[str, Manifest]:
    """Build arrays and manifest, measure served metrics, plot the curve, publish atomically -> (version, manifest)."""
    t0 = time.perf_counter()
    arrays = build_arrays(trained, data)
    manifest = build_manifest(trained, data)
    if trained.budget is not None:
        published = footprint(arrays, trained.config.method)
        served = trained.budget.counts == "served"
        achieved = published.serving_memory_bytes if served else published.embedding_bytes
        assert achieved is not None  # footprint() always computes both
        if achieved > trained.budget.budget_bytes:  # the plan counts what publishing counts: a bug, never publish
            raise RuntimeError(
                f"the sized model has {achieved} {'served' if served else 'embedding'} bytes, over its budget of "
                f"{trained.budget.budget_bytes}"
            )
        manifest.budget = trained.budget.report(achieved)
    manifest.metrics.served = served_metrics(arrays, manifest, data, trained.test_users)
    manifest.metrics.timings["export_seconds"] = time.perf_counter() - t0
    Path(out_root).mkdir(parents=True, exist_ok=True)
    version = publish(out_root, arrays, manifest, {"curve.png": plot_curve(trained.history)})
    return version, read_manifest(version_path(out_root, version))
