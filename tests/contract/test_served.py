"""The served form (c2f/contract/served.py) is the one source of truth of what serving reads: for each form, on
small synthetic artifacts, its vectors are what the service ranks with and what the trainer's served metrics
evaluate, and its bytes are the footprint's serving bytes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from c2f.contract.artifact import Artifact, load_artifact, version_path
from c2f.contract.footprint import footprint
from c2f.contract.methods import COMMON_ARRAYS, exact_embeddings, get_spec
from c2f.contract.served import ServedForm, form_class, served_form
from c2f.service.scoring import Recommender
from tests.fixtures import build_artifact, make_arrays, with_pq

N_USERS, N_ITEMS, D = 7, 30, 8

# (form, method, codes, mode): every form, and each way compressed mode reaches it
CASES = [
    ("exact", "c2f", False, "exact"),
    ("exact", "hash", False, "compressed"),  # no compressed form and no stored table: served exactly
    ("table", "ud", False, "compressed"),
    ("sparse", "legcf", False, "compressed"),
    ("sparse", "c2f", False, "compressed"),
    ("sparse+pq", "legcf", True, "compressed"),
    ("pq", "ud", True, "compressed"),
    ("pq", "qr", True, "compressed"),
]


def _artifact(root: Path, method: str, codes: bool) -> Artifact:
    """A random artifact of ``method`` with item biases; with ``codes``: pq codes and item scales too."""
    arrays = make_arrays(method, n_users=N_USERS, n_items=N_ITEMS, d=D, seed=5)
    arrays["item_bias"] = np.random.default_rng(6).standard_normal(N_ITEMS).astype(np.float32)
    if codes:
        arrays = with_pq(arrays, subspaces=4, centroids=16, seed=7, item_scale=True)
    return load_artifact(version_path(root, build_artifact(root, method, arrays=arrays)))


def _form(artifact: Artifact, mode: str) -> ServedForm:
    arrays = artifact.arrays
    return served_form(artifact.spec, arrays, mode, lambda: exact_embeddings(arrays, artifact.manifest))


@pytest.mark.parametrize(("name", "method", "codes", "mode"), CASES)
def test_the_service_ranks_with_the_forms_vectors(
    artifact_root: Path, name: str, method: str, codes: bool, mode: str
) -> None:
    artifact = _artifact(artifact_root, method, codes)
    form = _form(artifact, mode)
    assert form.name == name
    V = form.vectors()  # (N, d) float32: users, then items
    assert V.shape == (N_USERS + N_ITEMS, D) and V.dtype == np.float32
    rec = Recommender(artifact, mode)
    assert type(rec.scorer) is type(form)
    users, items = V[:N_USERS], V[N_USERS:]
    expected = users @ items.T + artifact.arrays["item_bias"]
    np.testing.assert_allclose(rec.user_scores(np.arange(N_USERS)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rec.user_embeddings(np.array([0, 6])), users[[0, 6]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rec.item_embeddings(np.array([3, 29])), items[[3, 29]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rec.scorer.item_norms, np.linalg.norm(items, axis=1), rtol=1e-5)
    # serving keeps the id maps and graph plus what the form holds as loaded, nothing else
    assert set(rec.artifact.arrays) == {*COMMON_ARRAYS, *form.kept}


@pytest.mark.parametrize(("name", "method", "codes", "mode"), CASES)
def test_the_trainers_served_metrics_evaluate_the_forms_vectors(
    artifact_root: Path, name: str, method: str, codes: bool, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import c2f.trainer.export

    artifact = _artifact(artifact_root, method, codes)
    evaluated: dict[str, Any] = {}

    def fake_evaluate(user_vectors: torch.Tensor, item_vectors: torch.Tensor, *args: Any, **kwargs: Any) -> dict:
        evaluated[kwargs["progress"]] = (torch.cat([user_vectors, item_vectors]).numpy(), kwargs["item_bias"])
        return {"recall@20": float(len(evaluated))}

    monkeypatch.setattr(c2f.trainer.export, "evaluate", fake_evaluate)
    data = SimpleNamespace(n_users=N_USERS, test=None, train=None, valid=None)
    arrays = {name: np.array(arr) for name, arr in artifact.arrays.items()}  # writable, as export's are
    metrics = c2f.trainer.export.served_metrics(arrays, artifact.manifest, data)  # type: ignore[arg-type]
    label = f"test (served {mode})"
    if name == "exact" and mode == "compressed":  # compressed mode serves exactly: the exact figures, reused
        assert list(evaluated) == ["test (served exact)"] and metrics["compressed"] == metrics["exact"]
        label = "test (served exact)"
    vectors, bias = evaluated[label]
    np.testing.assert_array_equal(vectors, _form(artifact, mode).vectors())
    np.testing.assert_array_equal(bias, artifact.arrays["item_bias"])


@pytest.mark.parametrize(("name", "method", "codes", "mode"), [case for case in CASES if case[3] == "compressed"])
def test_the_forms_bytes_are_the_footprints_serving_bytes(
    artifact_root: Path, name: str, method: str, codes: bool, mode: str
) -> None:
    artifact = _artifact(artifact_root, method, codes)
    form = _form(artifact, mode)
    fp = footprint(artifact.arrays, method)
    assert form.serving_bytes == fp.serving_memory_bytes
    if name in ("sparse", "sparse+pq", "pq"):  # the compressed forms: the arrays they read, item biases aside
        assert fp.served_form == name
        assert form.serving_bytes == fp.compressed_serving_bytes + artifact.arrays["item_bias"].nbytes
    else:
        assert fp.served_form is None


def test_a_float16_codebook_is_upcast_and_not_kept(artifact_root: Path) -> None:
    arrays = make_arrays("legcf", n_users=N_USERS, n_items=N_ITEMS, d=D)
    arrays["H_meta"] = arrays["H_meta"].astype(np.float16)
    form = served_form(get_spec("legcf"), arrays, "compressed")
    assert form.kept == {"S_c_idx_served", "S_c_w_served"}
    assert form.memory_bytes()["H_meta_float32"] == arrays["H_meta"].size * 4
    assert form.serving_bytes == footprint(arrays, "legcf").serving_memory_bytes  # counted as stored


def test_a_float16_table_is_scored_in_upcast_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """ud's float16 table is never copied whole: items are scored and normed a few rows at a time, each block
    upcast, giving the float32 math over the stored values."""
    import c2f.contract.served

    monkeypatch.setattr(c2f.contract.served, "CHUNK_ELEMENTS", 3 * D)  # 3 rows a block: several blocks
    arrays = make_arrays("ud", n_users=N_USERS, n_items=N_ITEMS, d=D)
    arrays["H_full"] = arrays["H_full"].astype(np.float16)
    form = served_form(get_spec("ud"), arrays, "compressed")
    table = arrays["H_full"].astype(np.float32)
    assert form.kept == {"H_full"} and form.memory_bytes() == {}
    np.testing.assert_allclose(form.scores(table[:2]), table[:2] @ table[N_USERS:].T, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(form.item_norms, np.linalg.norm(table[N_USERS:], axis=1), rtol=1e-6)


@pytest.mark.parametrize(
    ("method", "codes", "mode", "name"),
    [
        ("ud", False, "compressed", "table"),
        ("ud", True, "compressed", "pq"),
        ("ud", True, "exact", "exact"),  # exact mode ignores the codes
        ("legcf", False, "compressed", "sparse"),
        ("c2f", True, "compressed", "sparse+pq"),
        ("hash", False, "compressed", "exact"),
        ("qr", True, "compressed", "pq"),
    ],
)
def test_one_function_chooses_the_form(method: str, codes: bool, mode: str, name: str) -> None:
    present = ["user_ids", *(("pq_codes", "pq_codebooks") if codes else ())]
    assert form_class(get_spec(method), present, mode).name == name


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown serving mode"):
        form_class(get_spec("ud"), [], "fast")


# ---- users folded in (TrainConfig.served_users = "fold_in"): the stored forms hold the item rows alone ----
def _with_fold_in_map(arrays: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """``arrays`` plus a random fold-in map (fold_in_W (d, d), fold_in_c (d,) float32) for d = D."""
    W = np.random.default_rng(seed).standard_normal((D, D)).astype(np.float32)
    return {**arrays, "fold_in_W": W, "fold_in_c": np.zeros(D, np.float32)}


FOLDED = [("table", "ud", False), ("sparse", "c2f", False), ("sparse+pq", "legcf", True), ("pq", "qr", True)]


@pytest.mark.parametrize(("name", "method", "codes"), FOLDED)
def test_a_folded_form_holds_the_item_rows_alone(artifact_root: Path, name: str, method: str, codes: bool) -> None:
    """With the map stored, every stored form serves the same item vectors as without it, holds no user row, and
    counts only the item rows of its per-entity arrays (and the map) in its serving bytes."""
    arrays = make_arrays(method, n_users=N_USERS, n_items=N_ITEMS, d=D, seed=5)
    if codes:
        arrays = with_pq(arrays, subspaces=4, centroids=16, seed=7, item_scale=True)
    full = served_form(get_spec(method), arrays, "compressed")
    folded_arrays = _with_fold_in_map(arrays)
    folded = served_form(get_spec(method), folded_arrays, "compressed")
    assert folded.name == name and folded.users_folded_in and not full.users_folded_in
    items = np.arange(N_ITEMS)
    np.testing.assert_allclose(folded.item_vectors(items), full.item_vectors(items), rtol=1e-6)
    np.testing.assert_allclose(folded.vectors(), full.vectors()[N_USERS:], rtol=1e-6)  # every row held: the items
    queries = np.random.default_rng(1).standard_normal((3, D)).astype(np.float32)
    np.testing.assert_allclose(folded.scores(queries), full.scores(queries), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no user rows"):
        folded.user_vectors(np.array([0]))
    spec = get_spec(method)
    per_entity = [
        n
        for n in form_class(spec, arrays.keys(), "compressed").reads(spec, arrays.keys())
        if arrays[n].shape[0] == N_USERS + N_ITEMS
    ]
    assert per_entity  # every stored form has one row an entity somewhere
    user_rows = sum(arrays[n].nbytes // (N_USERS + N_ITEMS) * N_USERS for n in per_entity)
    map_bytes = folded_arrays["fold_in_W"].nbytes + folded_arrays["fold_in_c"].nbytes
    assert folded.serving_bytes == full.serving_bytes - user_rows + map_bytes
    assert footprint(folded_arrays, method).serving_memory_bytes == folded.serving_bytes
    assert (
        footprint(folded_arrays, method).served_users == "fold_in"
        and footprint(arrays, method).served_users == "stored"
    )
    assert folded.kept.isdisjoint(per_entity)  # copies of the item rows: the stored arrays are freed


def test_the_exact_form_keeps_the_trained_users(artifact_root: Path) -> None:
    arrays = _with_fold_in_map(make_arrays("c2f", n_users=N_USERS, n_items=N_ITEMS, d=D, seed=5))
    artifact = load_artifact(version_path(artifact_root, build_artifact(artifact_root, "c2f", arrays=arrays)))
    exact = _form(artifact, "exact")
    assert not exact.users_folded_in and exact.vectors().shape == (N_USERS + N_ITEMS, D)


@pytest.mark.parametrize(("name", "method", "codes"), FOLDED)
def test_a_folded_forms_copies_are_counted_as_derived(name: str, method: str, codes: bool) -> None:
    """The item rows a folded form copies out of the stored arrays are in memory_bytes (GET /footprint's derived)."""
    arrays = make_arrays(method, n_users=N_USERS, n_items=N_ITEMS, d=D, seed=5)
    if codes:
        arrays = with_pq(arrays, subspaces=4, centroids=16, seed=7)
    folded = served_form(get_spec(method), _with_fold_in_map(arrays), "compressed")
    derived = folded.memory_bytes()
    if name == "table":
        assert derived["table_item_rows"] == arrays["H_full"].nbytes // (N_USERS + N_ITEMS) * N_ITEMS
    elif name == "sparse":
        stored = arrays["S_c_idx_served"].nbytes + arrays["S_c_w_served"].nbytes
        assert derived["assignment_item_rows"] == stored // (N_USERS + N_ITEMS) * N_ITEMS
    else:  # the codes are copied subspace-major for the items only
        assert derived["item_codes_by_subspace"] == N_ITEMS * 4 and derived["user_codes"] == 0
