"""Export knobs: the compressed serving form's number of terms (TrainConfig.served_terms) and the stored dtypes
(TrainConfig.store_dtype, c2f/contract/dtypes.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from c2f.contract.config import TrainConfig
from c2f.contract.dtypes import as_float32_arrays
from c2f.contract.jobspec import TrainParams
from c2f.contract.reconstruct import compressed_embeddings
from c2f.trainer.export import served_assignment, store_dtypes
from tests.fixtures import make_arrays

SMALL = dict(dim=32, m_c=24, m_r=8, t_r=3, d_r=16, batch_size=1024, epochs=10, seed=7)


# ---------------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------------
def test_defaults_keep_the_trained_terms_and_store_float16() -> None:
    config = TrainConfig()
    assert config.served_terms is None and config.terms_served == config.t_c == 2
    assert config.store_dtype == "float16"  # chosen by benchmarks/served_terms.py: no served loss on planted data
    assert TrainConfig(served_terms=8).terms_served == 8


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"served_terms": 0}, r"served_terms must be between 1 and m_c \(300\); got 0"),
        ({"served_terms": 301}, r"served_terms must be between 1 and m_c \(300\); got 301"),
        ({"served_terms": 2.5}, "served_terms must be an integer or None"),
        ({"served_terms": 4, "served_fit": "weights"}, "needs served_fit='reassign'"),
        ({"store_dtype": "bfloat16"}, "store_dtype must be one of float32, float16; got 'bfloat16'"),
    ],
)
def test_bad_values_give_clear_errors(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"served_terms": 0}, "greater than or equal to 1"),
        ({"served_terms": 30, "m_c": 20}, r"served_terms must be between 1 and m_c \(20\); got 30"),
        ({"served_terms": 4, "served_fit": "codebook"}, "needs served_fit='reassign'"),
        ({"store_dtype": "float64"}, "float32"),
    ],
)
def test_bad_values_are_refused_over_http(values: dict, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        TrainParams.model_validate(values)
    assert TrainParams.model_validate({"served_terms": 4, "store_dtype": "float16"}).served_terms == 4  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------------
# the fit and the stored types, on known arrays
# ---------------------------------------------------------------------------------------------------------------
def test_more_terms_recover_a_four_sparse_composition_that_two_cannot() -> None:
    rng = np.random.default_rng(1)
    H_meta = rng.standard_normal((30, 64)).astype(np.float32)
    true_idx = np.stack([rng.choice(30, 4, replace=False) for _ in range(300)])
    H_full = compressed_embeddings(true_idx, rng.uniform(0.3, 1.0, (300, 4)).astype(np.float32), H_meta)
    start = true_idx[:, :2]  # "trained" indices: only half of each true composition
    errors = {}
    for terms in (2, 4):
        idx, w, C = served_assignment(start, H_meta, H_full, "reassign", rounds=0, terms=terms)
        assert idx.shape == w.shape == (300, terms) and len({*idx[0].tolist()}) == terms
        errors[terms] = np.linalg.norm(compressed_embeddings(idx, w, C) - H_full) / np.linalg.norm(H_full)
    assert errors[4] < 1e-3 < 0.2 < errors[2]
    with pytest.raises(ValueError, match="needs fit='reassign'"):
        served_assignment(start, H_meta, H_full, "weights", terms=4)
    with pytest.raises(ValueError, match=r"between 1 and m \(30\); got 31"):
        served_assignment(start, H_meta, H_full, terms=31)


@pytest.mark.parametrize(("m_c", "expected"), [(300, np.uint16), (70_000, np.uint32)])
def test_stored_index_type_follows_the_codebook_size(m_c: int, expected: type) -> None:
    arrays = make_arrays("legcf", n_users=3, n_items=4, d=2, m_c=m_c, t_c=2)
    stored = store_dtypes(arrays, "legcf", "float32")
    assert stored["S_c_idx"].dtype == stored["S_c_idx_served"].dtype == np.dtype(expected)
    np.testing.assert_array_equal(stored["S_c_idx"], arrays["S_c_idx"])
    assert stored["H_meta"].dtype == np.float32 and stored["graph_indices"].dtype == np.int32


def test_store_dtypes_float16_covers_every_embedding_array_and_nothing_else() -> None:
    arrays = make_arrays("c2f", d=8, m_r=4)
    arrays["item_bias"] = np.zeros(arrays["item_ids"].shape[0], np.float32)
    stored = store_dtypes(arrays, "c2f", "float16")
    halves = {"S_c_w", "S_c_w_served", "H_meta", "E_c", "S_r_w", "E_r_data"}
    assert {n for n, a in stored.items() if a.dtype == np.float16} == halves
    assert {n for n, a in stored.items() if a.dtype == np.uint16} == {
        "S_c_idx",
        "S_c_idx_served",
        "S_r_idx",
        "E_r_indices",
    }
    assert stored["item_bias"].dtype == np.float32 and stored["E_r_indptr"].dtype == np.int64
    ud = store_dtypes(make_arrays("ud"), "ud", "float16")
    assert ud["H_full"].dtype == ud["E"].dtype == np.float16
    arrays["H_meta"] = arrays["H_meta"] * 1e5
    with pytest.raises(ValueError, match="store_dtype=float16: array H_meta values up to .* do not fit float16"):
        store_dtypes(arrays, "c2f", "float16")


# ---------------------------------------------------------------------------------------------------------------
# on a trained model (planted communities): more served terms rank closer to the exact mode; float16 costs nothing
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(synthetic_lightgcn_dir):  # type: ignore[no-untyped-def]
    from c2f.trainer.data import load_dataset
    from c2f.trainer.train import train

    data = load_dataset(str(synthetic_lightgcn_dir))
    return data, train(data, TrainConfig(method="legcf", **SMALL))  # type: ignore[arg-type]


def _export(trained, **overrides):  # type: ignore[no-untyped-def]
    from c2f.trainer.export import build_arrays, build_manifest, served_metrics

    data, model = trained
    variant = dataclasses.replace(model, config=dataclasses.replace(model.config, **overrides))
    arrays = build_arrays(variant, data)
    return arrays, served_metrics(arrays, build_manifest(variant, data), data)


def _top20_agreement(arrays: dict[str, np.ndarray], trained) -> float:  # type: ignore[no-untyped-def]
    """Mean share of each user's exact-mode top 20 (seen items excluded) that the compressed form also ranks top 20."""
    data, model = trained
    exact = model.model.full_embeddings().cpu().numpy()
    a = as_float32_arrays(arrays)
    served = compressed_embeddings(a["S_c_idx_served"], a["S_c_w_served"], a["H_meta"])
    n = data.n_users
    seen = (data.train + data.valid).toarray() > 0
    tops = []
    for H in (exact, served):
        scores = H[:n] @ H[n:].T
        scores[seen] = -np.inf
        tops.append(np.argsort(-scores, axis=1)[:, :20])
    return float(np.mean([len(set(e) & set(s)) / 20 for e, s in zip(*tops, strict=True)]))


def test_more_served_terms_rank_closer_to_exact(trained) -> None:  # type: ignore[no-untyped-def]
    agreement, error, served = {}, {}, {}
    exact = trained[1].model.full_embeddings().cpu().numpy()
    for terms in (2, 4):
        arrays, metrics = _export(trained, served_terms=terms)
        assert arrays["S_c_idx_served"].shape[1] == terms and arrays["S_c_idx_served"].dtype == np.uint16
        agreement[terms] = _top20_agreement(arrays, trained)
        a = as_float32_arrays(arrays)
        fitted = compressed_embeddings(a["S_c_idx_served"], a["S_c_w_served"], a["H_meta"])
        error[terms] = float(np.linalg.norm(fitted - exact) / np.linalg.norm(exact))
        served[terms] = metrics["compressed"].test["recall@20"]  # type: ignore[index]
    print(f"top-20 agreement with exact: {agreement}; relative error: {error}; served recall@20: {served}")
    # (seed 7, planted defaults: agreement 0.975 -> 0.982, i.e. 28% fewer top-20 entries that differ from exact)
    assert 1 - agreement[4] < 0.85 * (1 - agreement[2])
    assert error[4] < 0.8 * error[2]
    # served Recall@20 itself is not compared: on 600 planted users it moves by ~0.005 from fit to fit either way


def test_float16_storage_serves_like_float32(trained) -> None:  # type: ignore[no-untyped-def]
    wide, m32 = _export(trained, store_dtype="float32")
    small, m16 = _export(trained, store_dtype="float16")
    assert small["H_meta"].dtype == small["S_c_w_served"].dtype == np.float16
    for name in ("S_c_w_served", "H_meta", "S_c_w", "E_c"):
        assert small[name].nbytes * 2 == wide[name].nbytes, name
    assert small["S_c_idx_served"].dtype == wide["S_c_idx_served"].dtype == np.uint16  # indices: always compact
    for mode in ("compressed", "exact"):
        r32, r16 = m32[mode].test["recall@20"], m16[mode].test["recall@20"]  # type: ignore[index]
        assert r16 == pytest.approx(r32, abs=0.005), mode
    assert _top20_agreement(small, trained) > 0.95 * _top20_agreement(wide, trained)


def test_a_product_quantized_residual_is_exported_and_measured(trained) -> None:  # type: ignore[no-untyped-def]
    """pq_subspaces > 0: export adds pq_codes/pq_codebooks (float16 codebooks) that quantize what the sparse form
    leaves; served vectors = sparse + decoded codes fit the propagated ones better than the sparse form alone, and
    the served compressed metrics are those of that sum."""
    from c2f.contract.reconstruct import pq_embeddings

    data, model = trained
    exact = model.model.full_embeddings().cpu().numpy()
    plain, _ = _export(trained)
    arrays, metrics = _export(trained, pq_subspaces=8, pq_refine_epochs=0)  # the codes as k-means fitted them
    n_entities = len(arrays["user_ids"]) + len(arrays["item_ids"])
    assert arrays["pq_codes"].shape == (n_entities, 8) and arrays["pq_codes"].dtype == np.uint8
    assert arrays["pq_codebooks"].shape == (8, 256, 4) and arrays["pq_codebooks"].dtype == np.float16
    assert "pq_codes" not in plain  # the default has no quantized part
    n = data.n_users

    def dot_error(a: dict[str, np.ndarray]) -> float:
        f = as_float32_arrays(a)
        served = compressed_embeddings(f["S_c_idx_served"], f["S_c_w_served"], f["H_meta"])
        if "pq_codes" in a:
            served = served + pq_embeddings(a["pq_codes"], a["pq_codebooks"])
        return float(np.abs(served[:n] @ served[n:].T - exact[:n] @ exact[n:].T).mean())

    errors = {"sparse": dot_error(plain), "sparse+pq": dot_error(arrays)}
    served = metrics["compressed"].test["recall@20"]  # type: ignore[index]
    print(f"user-item dot error {errors}; served recall@20 {served:.4f}")
    # (seed 7: mean dot-product error 0.087 with the sparse form alone, 0.016 with the residual's 8 codes)
    assert errors["sparse+pq"] < 0.6 * errors["sparse"]
    assert served >= 0.95 * metrics["exact"].test["recall@20"]  # type: ignore[index]


def _served_norms_match(arrays: dict[str, np.ndarray], method: str, exact: np.ndarray) -> None:
    """Items' served vectors have their exact norms (to float16 rounding of the scale); users' are the codes'."""
    from c2f.contract.methods import get_spec
    from c2f.contract.reconstruct import pq_embeddings
    from c2f.contract.served import served_form

    n = len(arrays["user_ids"])
    form = served_form(get_spec(method), arrays, "compressed")
    served = form.vectors()
    assert served is not None
    np.testing.assert_allclose(np.linalg.norm(served[n:], axis=1), np.linalg.norm(exact[n:], axis=1), rtol=2e-3)
    rows = np.arange(n, len(served), 7)  # the row-wise path decodes the same vectors
    np.testing.assert_allclose(form.vectors(rows), served[rows], rtol=1e-6)
    if method == "ud":
        decoded = pq_embeddings(arrays["pq_codes"], arrays["pq_codebooks"])
        np.testing.assert_array_equal(served[:n], decoded[:n])


def test_item_norms_are_kept_apart_from_the_codes_where_asked(trained) -> None:  # type: ignore[no-untyped-def]
    """legcf: off by default (pq_item_norms=None on the sparse form), on when asked: one float16 scale an item
    that brings each item's served vector (sparse + codes) to its exact norm."""
    data, model = trained
    exact = model.model.full_embeddings().cpu().numpy()
    default, _ = _export(trained, pq_subspaces=8, pq_refine_epochs=0)
    assert "pq_item_scale" not in default
    arrays, metrics = _export(trained, pq_subspaces=8, pq_item_norms=True, pq_refine_epochs=0)  # norms as fitted
    assert arrays["pq_item_scale"].shape == (data.n_items,) and arrays["pq_item_scale"].dtype == np.float16
    _served_norms_match(arrays, "legcf", exact)
    assert metrics["compressed"].test["recall@20"] > 0  # type: ignore[index]


def test_a_table_served_from_codes_keeps_item_norms_by_default(synthetic_lightgcn_dir) -> None:  # type: ignore[no-untyped-def]
    from c2f.trainer.data import load_dataset
    from c2f.trainer.train import train

    data = load_dataset(str(synthetic_lightgcn_dir))
    config = TrainConfig(method="ud", dim=32, batch_size=1024, epochs=5, seed=7, pq_subspaces=4, pq_refine_epochs=0)
    ud = train(data, config)
    assert config.item_norms_served and not dataclasses.replace(config, pq_item_norms=False).item_norms_served
    arrays, _ = _export((data, ud))
    assert arrays["pq_item_scale"].dtype == np.float16
    _served_norms_match(arrays, "ud", ud.model.full_embeddings().cpu().numpy())
    bare, _ = _export((data, ud), pq_item_norms=False)
    assert "pq_item_scale" not in bare
