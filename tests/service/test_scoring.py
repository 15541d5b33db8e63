from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import Artifact, ArtifactError, load_artifact, version_path
from c2f.contract.manifest import Manifest
from c2f.contract.methods import exact_embeddings
from c2f.service.scoring import Recommender, top_n
from tests.fixtures import (
    build_artifact,
    dense_reconstruction,
    make_arrays,
    make_manifest,
    tiny_known_arrays,
)


def _load(root: Path, method: str = "c2f", **kwargs: object) -> Artifact:
    version = build_artifact(root, method, **kwargs)  # type: ignore[arg-type]
    return load_artifact(version_path(root, version))


@pytest.fixture
def tiny(artifact_root: Path) -> Recommender:
    version = build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    return Recommender(load_artifact(version_path(artifact_root, version)), "compressed")


def test_tiny_hand_computed_top_n(tiny: Recommender) -> None:
    idx, scores = tiny.recommend(0, 3, exclude_seen=True)
    assert idx.tolist() == [0, 4, 1]
    np.testing.assert_allclose(scores, [1.0, 1.0, 0.5], rtol=1e-6)
    idx, scores = tiny.recommend(0, 3, exclude_seen=False)
    assert idx.tolist() == [2, 3, 0]
    np.testing.assert_allclose(scores, [2.5, 1.7, 1.0], rtol=1e-6)
    idx, _ = tiny.recommend(1, 2)
    assert idx.tolist() == [3, 1]
    # explicit excludes on top of seen items
    idx, _ = tiny.recommend(0, 3, exclude_items=[0])
    assert idx.tolist() == [4, 1]
    assert tiny.user_index("alice") == 0 and tiny.user_index("nobody") is None
    assert tiny.item_index("i3") == 3
    assert tiny.scoring == "compressed"


def test_tiny_similar_items_is_cosine(tiny: Recommender) -> None:
    items = np.array([[1, 0], [0, 1], [2, 1], [0.2, 3], [1.5, -1]], dtype=np.float64)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    cos = unit @ unit[2]
    cos[2] = -np.inf
    expected = np.argsort(-cos, kind="stable")[:4]
    idx, scores = tiny.similar_items(2, 4)
    assert idx.tolist() == expected.tolist()
    assert 2 not in idx.tolist()
    np.testing.assert_allclose(scores, cos[expected], rtol=1e-5)


def test_popular(tiny: Recommender) -> None:
    # interactions: alice i2 (graph) + i3 (held out), bob i0 -> counts i0=1, i2=1, i3=1, others 0
    idx, scores = tiny.popular(3)
    assert idx.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(scores, [1, 1, 1])
    idx, _ = tiny.popular(2, exclude=[0, 99, -1])
    assert idx.tolist() == [2, 3]


@pytest.mark.parametrize("method", ["legcf", "c2f"])
def test_compressed_scores_equal_dense_reconstruction(artifact_root: Path, method: str) -> None:
    artifact = _load(artifact_root, method, n_users=30, n_items=70, d=8, m_c=12, t_c=3, seed=7)
    rec = Recommender(artifact, "compressed")
    H = dense_reconstruction(dict(artifact.arrays))
    users, items = H[: rec.n_users], H[rec.n_users :]
    dense_scores = users @ items.T
    np.testing.assert_allclose(rec.user_scores(np.arange(rec.n_users)), dense_scores, rtol=1e-4, atol=1e-4)
    # top-n through the full path equals ranking the dense scores
    for u in range(rec.n_users):
        s = dense_scores[u].copy()
        s[rec.seen_items(u)] = -np.inf
        expected = np.argsort(-s, kind="stable")[:10]
        idx, scores = rec.recommend(u, 10)
        np.testing.assert_allclose(scores, s[idx], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.sort(s[expected]), np.sort(s[idx]), rtol=1e-4, atol=1e-4)
    # cosine similar items against the dense reconstruction
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    for i in (0, 5, 69):
        cos = unit @ unit[i]
        idx, scores = rec.similar_items(i, 5)
        np.testing.assert_allclose(scores, cos[idx], rtol=1e-4, atol=1e-5)
        cos[i] = -np.inf
        np.testing.assert_allclose(scores, np.sort(cos)[::-1][:5], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["ud", "legcf", "c2f"])
def test_seen_items_never_recommended(artifact_root: Path, method: str) -> None:
    artifact = _load(artifact_root, method, n_users=20, n_items=15, seen_per_user=6, seed=11)
    for mode in ("compressed", "exact"):
        rec = Recommender(artifact, mode)
        for u in range(rec.n_users):
            seen = set(rec.seen_items(u).tolist())
            assert len(seen) == 7
            idx, _ = rec.recommend(u, 15, exclude_seen=True)
            assert not seen & set(idx.tolist())
            assert len(idx) == 15 - 7  # n larger than what is left: only unseen items come back
            idx, _ = rec.recommend(u, 15, exclude_seen=False)
            assert seen <= set(idx.tolist())


def test_batch_matches_single(artifact_root: Path) -> None:
    rec = Recommender(_load(artifact_root, "c2f", n_users=12, n_items=30), "compressed")
    batch = rec.recommend_batch([3, 0, 3, 11], 7, exclude_items=[1, 2])
    for u, (idx, scores) in zip([3, 0, 3, 11], batch, strict=True):
        single_idx, single_scores = rec.recommend(u, 7, exclude_items=[1, 2])
        assert idx.tolist() == single_idx.tolist()
        np.testing.assert_allclose(scores, single_scores, rtol=1e-6)
        assert not {1, 2} & set(idx.tolist())


def test_recommend_vectors_ranks_like_recommend_for_the_same_vector_and_mask(artifact_root: Path) -> None:
    """A user served from a vector of its own (service.live) is ranked exactly as a trained user with that vector,
    item biases included; each row masks its own items."""
    arrays = make_arrays("legcf", n_users=12, n_items=30, seed=4)
    arrays["item_bias"] = np.random.default_rng(0).standard_normal(30).astype(np.float32)
    rec = Recommender(_load(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf")), "compressed")
    users = [3, 0, 11]
    vectors = rec.user_embeddings(np.array(users))
    seen = [rec.seen_items(3), None, np.array([0, 1, 2])]
    got = rec.recommend_vectors(vectors, seen, 6, exclude_items=[5])
    for u, mask, (idx, scores) in zip(users, seen, got, strict=True):
        want_idx, want_scores = rec.recommend(
            u, 6, exclude_seen=False, exclude_items=[5, *([] if mask is None else mask.tolist())]
        )
        assert idx.tolist() == want_idx.tolist()
        np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    assert (
        rec.graph_items(3).tolist()
        == arrays["graph_indices"][arrays["graph_indptr"][3] : arrays["graph_indptr"][4]].tolist()
    )


def test_ud_dense_scoring(artifact_root: Path) -> None:
    artifact = _load(artifact_root, "ud", seed=5)
    rec = Recommender(artifact, "compressed")
    assert rec.scoring == "dense"
    H = artifact.arrays["H_full"]
    expected = H[: rec.n_users] @ H[rec.n_users :].T
    np.testing.assert_allclose(rec.user_scores(np.arange(rec.n_users)), expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["ud", "legcf", "c2f"])
def test_exact_mode_scores_with_reconstruct(artifact_root: Path, method: str) -> None:
    artifact = _load(artifact_root, method, seed=9)
    rec = Recommender(artifact, "exact")
    assert rec.scoring == "dense" and rec.mode == "exact"
    H = exact_embeddings(artifact.arrays, artifact.manifest)
    expected = H[: rec.n_users] @ H[rec.n_users :].T
    np.testing.assert_allclose(rec.user_scores(np.arange(rec.n_users)), expected, rtol=1e-4, atol=1e-5)
    assert rec.memory_bytes()["exact_H_full"] == H.astype(np.float32).nbytes


def test_exact_mode_uses_reconstruct_module(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = _load(artifact_root, "legcf", seed=2)
    fixed = np.arange(16 * 4, dtype=np.float32).reshape(16, 4) / 10
    calls: list[str] = []

    def fake(arrays: object, manifest: Manifest) -> np.ndarray:
        calls.append(manifest.method)
        return fixed

    monkeypatch.setattr("c2f.service.scoring.exact_embeddings", fake)
    rec = Recommender(artifact, "exact")
    assert calls == ["legcf"]
    np.testing.assert_allclose(rec.user_scores([0])[0], fixed[6:] @ fixed[0], rtol=1e-6)


def test_exact_mode_rejects_bad_reconstruction(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = _load(artifact_root, "legcf")
    monkeypatch.setattr("c2f.service.scoring.exact_embeddings", lambda a, m: np.zeros((3, 3), np.float32))
    with pytest.raises(ArtifactError, match="exact reconstruction has shape"):
        Recommender(artifact, "exact")


def test_invalid_mode_and_indices(tiny: Recommender) -> None:
    with pytest.raises(ValueError, match="unknown serving mode"):
        Recommender(tiny.artifact, "fast")
    with pytest.raises(IndexError):
        tiny.recommend(5, 3)
    with pytest.raises(IndexError):
        tiny.similar_items(-1, 3)


def test_top_n_edge_cases() -> None:
    s = np.array([0.5, 2.0, 2.0, -np.inf, 1.0], dtype=np.float32)
    assert top_n(s, 2)[0].tolist() == [1, 2]
    assert top_n(s, 10)[0].tolist() == [1, 2, 4, 0]
    assert top_n(s, 0)[0].tolist() == []
    assert top_n(np.full(4, -np.inf, dtype=np.float32), 3)[0].tolist() == []


def _reference_top_n(scores: np.ndarray, n: int) -> list[int]:
    """The definition: finite entries ordered by (-score, index), first n."""
    finite = [i for i in range(len(scores)) if np.isfinite(scores[i])]
    return sorted(finite, key=lambda i: (-float(scores[i]), i))[:n]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [1, 20, 100])
def test_top_n_matches_definition_on_large_inputs(seed: int, n: int) -> None:
    """The block-max prefilter path (large inputs) returns exactly the definition's top n, ties and -inf included."""
    rng = np.random.default_rng(seed)
    size = 5_000 + 37 * seed  # not a multiple of the block size: the tail block must not be lost
    if seed % 3 == 0:
        scores = rng.standard_normal(size).astype(np.float32)
    elif seed % 3 == 1:
        scores = rng.integers(0, 5, size).astype(np.float32)  # massive ties
    else:
        scores = np.sort(rng.standard_normal(size).astype(np.float32))  # best entries all in the tail
    scores[rng.choice(size, size // 3, replace=False)] = -np.inf
    idx, vals = top_n(scores, n)
    assert idx.tolist() == _reference_top_n(scores, n)
    np.testing.assert_array_equal(vals, scores[idx])


def test_top_n_when_few_entries_are_finite() -> None:
    scores = np.full(10_000, -np.inf, dtype=np.float32)
    scores[[17, 9_999, 4_000]] = [1.0, 3.0, 1.0]
    assert top_n(scores, 20)[0].tolist() == [9_999, 17, 4_000]


def test_memory_stays_compressed(artifact_root: Path) -> None:
    arrays = make_arrays("c2f", n_users=10, n_items=500, d=64, m_c=20)
    version = build_artifact(artifact_root, "c2f", arrays=arrays)
    rec = Recommender(load_artifact(version_path(artifact_root, version)), "compressed")
    derived = rec.memory_bytes()
    assert "exact_H_full" not in derived
    # the served form: far less than an n_items × d table
    assert sum(v for k, v in derived.items() if k != "fold_in") < 500 * 64 * 4 / 4
    # the fold-in is counted too (its d × d system and map, whatever the model's size: here 10 users, 500 items)
    d = 64
    assert derived["fold_in"] == rec.user_fold_in.nbytes() >= 2 * d * d * 8 + d * d * 4 + 500 * 4
    rec.fold_in_items([np.array([0, 1])])  # the item side, fitted at first use, counts from then on
    assert rec.memory_bytes()["fold_in"] == rec.user_fold_in.nbytes() + rec.item_fold_in.nbytes()


def test_item_biases_are_added_to_user_scores_but_not_to_item_similarity(artifact_root: Path) -> None:
    """An artifact with ``item_bias`` (TrainConfig.biases) is served as h_u·h_i + b_i: a large enough bias moves
    an item to the top of every user's list; similar-items (cosine of item vectors) ignores it."""
    arrays = tiny_known_arrays()
    plain = Recommender(_load(artifact_root, "legcf", arrays=dict(arrays), manifest=make_manifest("legcf")))
    bias = np.zeros(5, np.float32)
    bias[4] = 10.0
    arrays["item_bias"] = bias
    biased = Recommender(
        _load(artifact_root / "b", "legcf", arrays=arrays, manifest=make_manifest("legcf")), "compressed"
    )
    np.testing.assert_allclose(biased.user_scores([0, 1]), plain.user_scores([0, 1]) + bias, rtol=1e-6)
    assert biased.recommend(0, 1, exclude_seen=False)[0].tolist() == [4]
    assert biased.similar_items(2, 4)[0].tolist() == plain.similar_items(2, 4)[0].tolist()
    assert biased.artifact.footprint.params_biases == 5
    assert biased.artifact.footprint.params_total == plain.artifact.footprint.params_paper + 5


def test_a_misshapen_item_bias_is_refused(artifact_root: Path) -> None:
    arrays = tiny_known_arrays()
    arrays["item_bias"] = np.zeros(4, np.float32)  # 5 items
    with pytest.raises(ArtifactError, match="item_bias"):
        _load(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf"))


# ---------------------------------------------------------------------------------------------------------------
# stored dtypes (c2f/contract/dtypes.py): compact artifacts score like the float32 math over their stored values
# ---------------------------------------------------------------------------------------------------------------
def _compact_pair(root: Path, method: str) -> tuple[Artifact, Artifact]:
    from tests.contract.test_dtypes import compact

    arrays = make_arrays(method, n_users=40, n_items=300, d=16, m_c=20, t_c=3, seed=11)
    wide = load_artifact(version_path(root, build_artifact(root, method, arrays=arrays)))
    small = load_artifact(version_path(root, build_artifact(root, method, arrays=compact(arrays))))
    return wide, small


@pytest.mark.parametrize("mode", ["compressed", "exact"])
@pytest.mark.parametrize("method", ["ud", "legcf", "c2f"])
def test_float16_artifacts_score_within_tolerance_of_float32(
    artifact_root: Path, method: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import c2f.service.scoring

    # small chunks, so a float16 dense table is scored over several upcast blocks
    monkeypatch.setattr(c2f.service.scoring, "_CHUNK_ELEMENTS", 16 * 70)
    wide, small = _compact_pair(artifact_root, method)
    if method == "ud":
        assert small.arrays["H_full"].dtype == np.float16
    else:
        assert small.arrays["H_meta"].dtype == np.float16 and small.arrays["S_c_idx_served"].dtype == np.uint16
    rec_wide, rec_small = Recommender(wide, mode), Recommender(small, mode)
    users = np.arange(rec_wide.n_users)
    s_wide, s_small = rec_wide.user_scores(users), rec_small.user_scores(users)
    assert s_small.dtype == np.float32
    scale = float(np.abs(s_wide).max())
    np.testing.assert_allclose(s_small, s_wide, atol=1e-2 * scale)
    # the top 10 barely moves: float16 perturbs scores by ~1e-3 relative, so only near-ties can swap
    overlap = [
        len(set(rec_wide.recommend(u, 10)[0].tolist()) & set(rec_small.recommend(u, 10)[0].tolist())) for u in users
    ]
    assert np.mean(overlap) >= 9.0
    np.testing.assert_allclose(rec_small.scorer.item_norms, rec_wide.scorer.item_norms, rtol=1e-2)
    if mode == "compressed" and method != "ud":
        # exactly the float32 math over the stored float16 values (nothing is computed in float16)
        H = dense_reconstruction(dict(small.arrays))
        np.testing.assert_allclose(s_small, H[: rec_small.n_users] @ H[rec_small.n_users :].T, rtol=1e-4, atol=1e-4)
    if method == "ud" and mode == "compressed":
        table = small.arrays["H_full"].astype(np.float32)
        np.testing.assert_allclose(s_small, table[:40] @ table[40:].T, rtol=1e-5, atol=1e-5)


def test_float16_memory_is_reported(artifact_root: Path) -> None:
    for method in ("legcf", "ud"):
        _, small = _compact_pair(artifact_root, method)
        derived = Recommender(small, "compressed").memory_bytes()
        if method == "legcf":  # the codebook is upcast once at load: m_c·d float32 on top of what is stored
            assert derived["H_meta_float32"] == 20 * 16 * 4
        else:  # a float16 dense table is never copied
            assert "H_meta_float32" not in derived and "exact_H_full" not in derived


# ---------------------------------------------------------------------------------------------------------------
# the product-quantized serving form (pq_codes, pq_codebooks): compressed mode scores from it, for any method
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scaled", [False, True], ids=["", "item-scale"])
@pytest.mark.parametrize("method", ["ud", "legcf", "hash"])
def test_pq_form_scores_are_the_decoded_dot_products(artifact_root: Path, method: str, scaled: bool) -> None:
    from c2f.contract.reconstruct import compressed_embeddings, pq_embeddings
    from tests.fixtures import with_pq

    arrays = make_arrays(method, n_users=12, n_items=40, d=8, seed=3)
    arrays = with_pq(arrays, subspaces=4, centroids=16, seed=4, item_scale=scaled)
    rec = Recommender(_load(artifact_root, method, arrays=arrays), "compressed")
    decoded = pq_embeddings(arrays["pq_codes"], arrays["pq_codebooks"])
    if method == "legcf":  # the codes quantize the sparse form's residual: the two parts add up
        assert rec.scoring == "compressed+pq"
        decoded += compressed_embeddings(arrays["S_c_idx_served"], arrays["S_c_w_served"], arrays["H_meta"])
    else:
        assert rec.scoring == "pq"
    users, items = decoded[:12], decoded[12:]
    if scaled:  # each item's served vector (codes, plus the sparse form for legcf) times its scale
        items = items * arrays["pq_item_scale"][:, None]
    np.testing.assert_allclose(rec.user_scores([0, 5, 11]), users[[0, 5, 11]] @ items.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rec.item_embeddings(np.array([2, 7])), items[[2, 7]], rtol=1e-5, atol=1e-6)
    idx, _ = rec.recommend(5, 40, exclude_seen=False)
    assert idx.tolist() == np.argsort(-(users[5] @ items.T), kind="stable").tolist()
    cosine = (items @ items[3]) / (np.linalg.norm(items, axis=1) * np.linalg.norm(items[3]) + 1e-12)
    cosine[3] = -np.inf
    assert rec.similar_items(3, 5)[0].tolist() == np.argsort(-cosine, kind="stable")[:5].tolist()
    assert rec.memory_bytes()["item_codes_by_subspace"] == 40 * 4  # one byte a code: as stored
    assert ("item_assignments_csr" in rec.memory_bytes()) == (method == "legcf")
    exact = Recommender(_load(artifact_root / "x", method, arrays=arrays), "exact")  # exact mode ignores the form
    assert exact.scoring == "dense"


def test_pq_form_with_float16_codebooks(artifact_root: Path) -> None:
    from tests.fixtures import with_pq

    arrays = with_pq(make_arrays("legcf", n_users=5, n_items=30, d=8), subspaces=2, centroids=16)
    wide = Recommender(_load(artifact_root, "legcf", arrays=dict(arrays)), "compressed")
    arrays["pq_codebooks"] = arrays["pq_codebooks"].astype(np.float16)
    small = Recommender(_load(artifact_root / "h", "legcf", arrays=arrays), "compressed")
    np.testing.assert_allclose(small.user_scores([1, 2]), wide.user_scores([1, 2]), rtol=2e-2, atol=2e-2)
    assert small.memory_bytes()["pq_codebooks_float32"] == 2 * 16 * 4 * 4


@pytest.mark.parametrize(
    ("method", "pq", "freed"),
    [
        ("ud", False, {"E"}),  # compressed mode scores the stored H_full; the layer-0 table is exact mode's
        ("ud", True, {"E", "H_full", "pq_codes"}),  # a full table served from codes: neither table stays
        ("legcf", False, {"S_c_idx", "S_c_w", "E_c"}),  # the trained assignment and layer-0 codebook
    ],
)
def test_a_served_model_frees_the_arrays_its_scorer_does_not_read(
    artifact_root: Path, method: str, pq: bool, freed: set[str]
) -> None:
    import gc
    import weakref

    from tests.fixtures import with_pq

    arrays = make_arrays(method, n_users=12, n_items=40, d=8, seed=3)
    arrays = with_pq(arrays, subspaces=4, centroids=16, seed=4, item_scale=True) if pq else arrays
    if pq:  # the item scales are used as stored, float16 included: they stay
        arrays["pq_item_scale"] = arrays["pq_item_scale"].astype(np.float16)
    loaded = _load(artifact_root, method, arrays=arrays)
    footprint, d = loaded.footprint, loaded.d
    refs = {name: weakref.ref(loaded.arrays[name]) for name in loaded.arrays}
    rec = Recommender(loaded, "compressed")
    expected = rec.user_scores([0, 3])
    del loaded
    gc.collect()
    assert {name for name, ref in refs.items() if ref() is None} == freed
    assert set(rec.artifact.arrays) == set(refs) - freed  # what the served artifact lists is what stays in memory
    assert rec.artifact.footprint == footprint and rec.artifact.d == d  # still those of the version as published
    np.testing.assert_array_equal(rec.user_scores([0, 3]), expected)


# ---------------------------------------------------------------------------------------------- item filters
@pytest.mark.parametrize(
    ("method", "mode", "pq", "biases"),
    [
        ("legcf", "compressed", False, True),
        ("c2f", "exact", False, False),
        ("ud", "compressed", False, True),
        ("ud", "compressed", True, False),
        ("legcf", "compressed", True, True),
        ("hash", "compressed", False, False),
    ],
)
def test_filtered_rankings_are_the_full_ranking_filtered(
    artifact_root: Path, method: str, mode: str, pq: bool, biases: bool
) -> None:
    """An allow-list (scored alone: its vectors gathered) and an attribute mask (many items: every item scored, the
    others masked) rank exactly as the full ranking filtered, for every served form."""
    from c2f.service.filters import ItemFilter
    from tests.fixtures import with_pq

    n_items = 240
    arrays = make_arrays(method, n_users=12, n_items=n_items, d=8, seed=5, seen_per_user=6)
    if pq:
        arrays = with_pq(arrays, subspaces=4, centroids=16, seed=2, item_scale=True)
    if biases:
        arrays["item_bias"] = np.random.default_rng(1).standard_normal(n_items).astype(np.float32)
    version = build_artifact(artifact_root, method, arrays=arrays, manifest=make_manifest(method, layers=2))
    rec = Recommender(load_artifact(version_path(artifact_root, version)), mode)
    rng = np.random.default_rng(9)
    allow = rng.choice(n_items, 25, replace=False)
    many = rng.random(n_items) < 0.5
    hidden = rng.choice(n_items, 30, replace=False)
    for filt in (
        ItemFilter.build(n_items, allow=allow, hidden=hidden),
        ItemFilter.build(n_items, mask=many, exclude=hidden[:5]),
        ItemFilter.build(n_items, mask=many, allow=allow),
        ItemFilter.build(n_items, hidden=hidden),
        ItemFilter.build(n_items, allow=rng.choice(n_items, 100, replace=False)),  # listed, too many to gather
    ):
        answerable = filt.answerable()
        for user in range(rec.n_users):
            full, full_scores = rec.recommend(user, n_items)
            expected = full[answerable[full]][:10]
            idx, scores = rec.recommend(user, 10, item_filter=filt)
            assert idx.tolist() == expected.tolist(), (user, rec._gathered(filt) is not None)
            np.testing.assert_allclose(scores, full_scores[answerable[full]][:10], rtol=1e-4, atol=1e-5)
            assert not np.isin(idx, rec.seen_items(user)).any()
        batch = rec.recommend_batch(range(rec.n_users), 10, item_filter=filt)
        for user, (batch_idx, batch_scores) in enumerate(batch):
            # the same ranking as one at a time, up to the order of exact ties (hash shares rows between items; a
            # batched product may round differently): the same scores, each the score of the item it names
            one_idx, one_scores = rec.recommend(user, 10, item_filter=filt)
            np.testing.assert_allclose(batch_scores, one_scores, rtol=1e-5, atol=1e-6)
            full, full_scores = rec.recommend(user, n_items)
            by_item = dict(zip(full.tolist(), full_scores.tolist(), strict=True))
            np.testing.assert_allclose([by_item[i] for i in batch_idx.tolist()], one_scores, rtol=1e-5, atol=1e-6)
        sim_full, _ = rec.similar_items(3, n_items)
        sim, _ = rec.similar_items(3, 10, item_filter=filt)
        assert sim.tolist() == sim_full[answerable[sim_full]][:10].tolist()
        pop_full, _ = rec.popular(n_items)
        assert rec.popular(10, item_filter=filt)[0].tolist() == pop_full[answerable[pop_full]][:10].tolist()


def test_an_allow_list_scores_only_its_items(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small candidate set never scores every item: only the candidates' vectors are read from the served form."""
    from c2f.service.filters import ItemFilter

    rec = Recommender(_load(artifact_root, "legcf", n_users=4, n_items=500, d=8))
    asked: list[int] = []
    original = rec.scorer.item_vectors
    monkeypatch.setattr(rec.scorer, "scores", lambda q: pytest.fail("scored every item"))
    monkeypatch.setattr(rec.scorer, "item_vectors", lambda items: asked.append(len(items)) or original(items))
    filt = ItemFilter.build(rec.n_items, allow=[7, 3, 499, 3, 10_000, -1], exclude=[499])
    assert filt.candidates is not None and filt.candidates.tolist() == [3, 7] and rec.gather_limit == 500 // 8
    idx, _ = rec.recommend(0, 5, exclude_seen=False, item_filter=filt)
    assert sorted(idx.tolist()) == [3, 7] and asked == [2]
    empty = ItemFilter.build(rec.n_items, allow=[])
    assert rec.recommend(0, 5, item_filter=empty)[0].size == 0
    assert rec.similar_items(3, 5, item_filter=ItemFilter.build(rec.n_items, allow=[3]))[0].size == 0


@pytest.mark.parametrize(
    ("method", "mode", "pq", "divisor"),
    [("ud", "compressed", False, 2), ("legcf", "exact", False, 2), ("legcf", "compressed", False, 8)]
    + [("ud", "compressed", True, 4), ("legcf", "compressed", True, 4)],
)
def test_gather_limits_follow_the_served_form(
    artifact_root: Path, method: str, mode: str, pq: bool, divisor: int
) -> None:
    """Candidates are scored alone up to where gathering them costs what scoring every item does: about half the
    items for a dense table, n_items / d for the sparse form, n_items / (2·d / M) for the codes (d = 8, M = 4)."""
    from tests.fixtures import with_pq

    arrays = make_arrays(method, n_users=4, n_items=400, d=8)
    if pq:
        arrays = with_pq(arrays, subspaces=4)
    version = build_artifact(artifact_root, method, arrays=arrays, manifest=make_manifest(method, layers=2))
    assert Recommender(load_artifact(version_path(artifact_root, version)), mode).gather_limit == 400 // divisor
