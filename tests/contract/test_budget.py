"""Memory budgets (c2f/contract/budget.py): parsing, sizing that fits with the next size up not fitting, plans counted
exactly as published footprints count, and clear refusals of budgets nothing can meet."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from c2f.contract.budget import (
    BudgetError,
    bytes_at,
    check_possible,
    parse_bytes,
    parse_percent,
    plan,
    size_for_budget,
)
from c2f.contract.config import TrainConfig
from c2f.contract.dtypes import target_dtype
from c2f.contract.footprint import footprint, planned_array_bytes, planned_embedding_bytes, planned_serving_bytes
from c2f.contract.methods import METHODS, get_spec
from c2f.contract.reconstruct import hash_buckets
from tests.fixtures import make_arrays, with_pq

# planted-data sized: 600 users, 400 items, d = 32; the full float32 table is 1000·32·4 = 128,000 bytes
N_USERS, N_ITEMS, D = 600, 400, 32


def config(method: str, **values: object) -> TrainConfig:
    """A config on d = 32 without item biases (given explicitly where they matter) and without the cap on m_c
    (tested on its own below); stored dtypes as defaulted: float16 reals and uint16 indices."""
    defaults = {"method": method, "dim": D, "biases": False, "budget_entities_per_row": 0}
    return TrainConfig(**{**defaults, **values})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [("2MB", 2_000_000), ("2mb", 2_000_000), ("1.5MiB", 1_572_864), ("512", 512), ("512 B", 512), ("3kB", 3000)],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "MB", "2XB", "-1MB", "0", "0.1", "2%", "1e3"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(BudgetError):
        parse_bytes(text)


def test_parse_percent() -> None:
    assert parse_percent("2%") == 2.0 and parse_percent(" 0.5 % ") == 0.5 and parse_percent("3") == 3.0
    for bad in ("", "two%", "0%", "-1%", "nan%", "inf"):
        with pytest.raises(BudgetError):
            parse_percent(bad)


def test_budget_and_budget_bytes_are_exclusive_and_positive() -> None:
    with pytest.raises(ValueError, match="not both"):
        config("hash", budget=2.0, budget_bytes=1000)
    for bad in ({"budget": 0.0}, {"budget": -1.0}, {"budget_bytes": 0}):
        with pytest.raises(ValueError, match="positive"):
            config("hash", **bad)


def test_hand_computed_sizes_at_ten_and_fifty_percent() -> None:
    """10% of 128,000 = 12,800 bytes; 50% = 64,000 bytes. float16 rows of d = 32 are 64 bytes (float32: 128)."""
    assert plan(config("hash", budget=10.0), N_USERS, N_ITEMS).value == 200  # type: ignore[union-attr]
    assert plan(config("hash", budget=10.0, store_dtype="float32"), N_USERS, N_ITEMS).value == 100  # type: ignore[union-attr]
    # item biases are stored float32 (400 · 4 = 1,600 bytes): (12,800 − 1,600) / 64 = 175 rows
    assert plan(config("hash", budget=10.0, biases=True), N_USERS, N_ITEMS).value == 175  # type: ignore[union-attr]
    # qr: m + ceil(1000 / m) <= 200 rows -> m = 194 (194 + 6); m = 195 needs 195 + 6 = 201
    assert plan(config("qr", budget=10.0), N_USERS, N_ITEMS).value == 194  # type: ignore[union-attr]
    # float32: <= 100 rows -> m = 88 (88 + 12); m = 89 needs 89 + 12 = 101
    assert plan(config("qr", budget=10.0, store_dtype="float32"), N_USERS, N_ITEMS).value == 88  # type: ignore[union-attr]
    # ud stores E and H_full: 2·1000·d'·2 <= 64,000 -> d' = 16
    assert plan(config("ud", budget=50.0), N_USERS, N_ITEMS).value == 16  # type: ignore[union-attr]
    # legcf: 4 assignment arrays of 1000·t_c·2 bytes (t_c = 2: 16,000) + E_c and H_meta (2·m_c·32·2) <= 64,000
    assert plan(config("legcf", budget=50.0), N_USERS, N_ITEMS).value == 375  # type: ignore[union-attr]
    # served_terms = 4: the served pair is 1000·4·(2 + 2) bytes: 8,000 + 16,000 + 128·m_c <= 64,000 -> m_c = 312
    assert plan(config("legcf", budget=50.0, served_terms=4), N_USERS, N_ITEMS).value == 312  # type: ignore[union-attr]
    # c2f (t_r = 4): legcf's + S_r (m_c·t_r·(2 + 2)) + E^r at most dense (m_r·d·(2 + 2) + (m_r + 1)·8),
    # m_r = round(m_c / 3)
    c2f = plan(config("c2f", budget_bytes=64_000, t_r=4), N_USERS, N_ITEMS)
    assert c2f is not None
    m_c, m_r = c2f.sizes["m_c"], c2f.sizes["m_r"]
    assert m_r == round(m_c * 100 / 300)

    def c2f_bytes(m_c: int, m_r: int) -> int:
        return 16_000 + 2 * m_c * 32 * 2 + m_c * 4 * 4 + m_r * 32 * 4 + (m_r + 1) * 8

    assert c2f_bytes(m_c, m_r) == c2f.planned_bytes <= 64_000 < c2f_bytes(m_c + 1, round((m_c + 1) / 3))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "budget", [{"budget": 7.0}, {"budget": 40.0}, {"budget": 130.0}, {"budget_bytes": 50_000}, {"budget_bytes": 9_999}]
)
def test_sizes_fit_and_the_next_size_up_does_not(method: str, budget: dict[str, float]) -> None:
    cfg = config(method, **budget)
    try:
        chosen = plan(cfg, N_USERS, N_ITEMS)
    except BudgetError:  # then even the smallest size is over budget
        low = {"ud": 1, "legcf": 2, "c2f": 2, "hash": 1, "qr": 32}[method]
        assert bytes_at(cfg, low, N_USERS, N_ITEMS) > (budget.get("budget_bytes") or 1280 * budget["budget"])
        return
    assert chosen is not None
    limit = budget.get("budget_bytes") or math.floor(128_000 * budget["budget"] / 100)
    assert chosen.budget_bytes == limit
    assert chosen.planned_bytes <= limit
    assert chosen.next_planned_bytes is None or chosen.next_planned_bytes > limit
    assert bytes_at(cfg, chosen.value + 1, N_USERS, N_ITEMS) > limit or chosen.next_planned_bytes is None
    sized, same = size_for_budget(cfg, N_USERS, N_ITEMS)
    assert same == chosen
    assert planned_embedding_bytes(method, sized, N_USERS, N_ITEMS) == chosen.planned_bytes


def _stored(arrays: dict[str, np.ndarray], method: str, store_dtype: str) -> dict[str, np.ndarray]:
    """Fixture arrays (float32, int32) in the dtypes an export stores (contract.dtypes.target_dtype)."""
    spec = get_spec(method)
    dims = spec.dims(arrays)
    out = dict(arrays)
    for name, want in spec.arrays.items():
        target = target_dtype(name, want.accepts, dims, store_dtype)
        if target is not None:
            out[name] = arrays[name].astype(target)
    return out


@pytest.mark.parametrize(
    ("method", "sizes", "arrays_kwargs"),
    [
        ("ud", {"dim": 6}, {"d": 6}),
        ("legcf", {"m_c": 7, "t_c": 3}, {"m_c": 7, "t_c": 3}),
        ("hash", {"hash_buckets": 9}, {"buckets": 9}),
        ("qr", {"qr_buckets": 5}, {"buckets": 5}),
        ("qr", {"qr_buckets": 0}, {"buckets": 4}),  # auto: ceil(sqrt(16)) = 4
    ],
)
@pytest.mark.parametrize(("biases", "store_dtype"), [(False, "float16"), (True, "float16"), (True, "float32")])
def test_a_plan_counts_what_the_published_footprint_counts(
    method: str, sizes: dict[str, int], arrays_kwargs: dict[str, int], biases: bool, store_dtype: str
) -> None:
    """Planned bytes per array equal the nbytes of stored arrays of those sizes, and the embedding bytes equal
    footprint()'s, for every method whose sizes are known before training."""
    cfg = TrainConfig(
        method=method,
        **{"dim": 4, **sizes},
        biases=biases,
        store_dtype=store_dtype,  # type: ignore[arg-type]
    )
    arrays = _stored(make_arrays(method, n_users=6, n_items=10, **{"d": 4, **arrays_kwargs}), method, store_dtype)
    if biases:
        arrays["item_bias"] = np.zeros(10, np.float32)
    planned = planned_array_bytes(method, cfg, 6, 10)
    assert planned == {name: arrays[name].nbytes for name in planned}
    assert planned_embedding_bytes(method, cfg, 6, 10) == footprint(arrays, method).embedding_bytes
    assert planned_serving_bytes(method, cfg, 6, 10) == footprint(arrays, method).serving_memory_bytes
    coded = dataclasses.replace(cfg, pq_subspaces=2)  # the product-quantized form, counted alike
    arrays = with_pq(arrays, subspaces=2, centroids=256, item_scale=coded.item_norms_served)  # ud, hash, qr: on
    for name in ("pq_codebooks", "pq_item_scale"):
        if name in arrays:
            arrays[name] = arrays[name].astype(store_dtype)
    assert planned_serving_bytes(method, coded, 6, 10) == footprint(arrays, method).serving_memory_bytes
    assert planned_embedding_bytes(method, coded, 6, 10) == footprint(arrays, method).embedding_bytes


def test_serving_memory_is_what_compressed_scoring_holds() -> None:
    """Hand-computed on 6 users, 10 items, d = 4, float32 fixture arrays: ud holds H_full (not E), legcf its served
    pair and H_meta (not the trained pair and E_c), hash the float32 (N, d) table it rebuilds; codes replace a
    table and add to a sparse form."""
    n, d = 16, 4
    ud, legcf, hashed = (make_arrays(m, n_users=6, n_items=10, d=d) for m in ("ud", "legcf", "hash"))
    assert footprint(ud, "ud").serving_memory_bytes == n * d * 4
    served = sum(legcf[k].nbytes for k in ("S_c_idx_served", "S_c_w_served", "H_meta"))
    assert footprint(legcf, "legcf").serving_memory_bytes == served < footprint(legcf, "legcf").embedding_bytes
    assert footprint(hashed, "hash").serving_memory_bytes == n * d * 4 > footprint(hashed, "hash").embedding_bytes
    pq_bytes = n * 2 + 2 * 8 * 2 * 4  # (N, M) uint8 codes, (M, K, d/M) float32 codebooks
    assert footprint(with_pq(hashed, 2, 8), "hash").serving_memory_bytes == pq_bytes
    assert footprint(with_pq(legcf, 2, 8), "legcf").serving_memory_bytes == served + pq_bytes
    legcf["item_bias"] = np.zeros(10, np.float32)
    assert footprint(legcf, "legcf").serving_memory_bytes == served + 40


def test_served_budgets_size_what_serving_holds() -> None:
    """budget_counts="served", hand-computed on 1,000 entities at d = 32 (float16, no biases)."""
    served = {"budget_counts": "served"}
    # ud holds H_full only: 1000·d·2 <= 64,000 -> d = 32 (stored counts E too: 16)
    assert plan(config("ud", budget=50.0, **served), N_USERS, N_ITEMS).value == 32  # type: ignore[union-attr]
    # with codes the knob is their number, a divisor of d: 1000·M + M·256·(32/M)·2 + the 400 items' float16
    # norm scales (800) = 1000·M + 17,184 <= 20,000 -> M = 2 (19,184); the next divisor, 4, is 21,184
    coded = plan(config("ud", budget_bytes=20_000, pq_subspaces=8, **served), N_USERS, N_ITEMS)
    assert coded is not None and coded.knob == "pq_subspaces" and coded.sizes == {"pq_subspaces": 2}
    assert (coded.planned_bytes, coded.next_planned_bytes, coded.counts) == (19_184, 21_184, "served")
    # without the scales (pq_item_norms=false) 800 bytes fewer
    bare = plan(config("ud", budget_bytes=20_000, pq_subspaces=8, pq_item_norms=False, **served), N_USERS, N_ITEMS)
    assert bare is not None and (bare.planned_bytes, bare.next_planned_bytes) == (18_384, 20_384)
    # hash and qr rebuild a float32 (N, d) table whatever their buckets: 1000·d·4 <= 12,800 -> d = 3
    assert plan(config("hash", budget=10.0, **served), N_USERS, N_ITEMS).sizes == {"dim": 3}  # type: ignore[union-attr]
    # legcf's served pair 1000·2·(2 + 2) + H_meta 64·m_c <= 12,800 -> m_c = 75; stored counts the trained pair
    # and E_c too, which do not fit in 12,800 at any m_c
    assert plan(config("legcf", budget=10.0, **served), N_USERS, N_ITEMS).value == 75  # type: ignore[union-attr]
    with pytest.raises(BudgetError, match="below the smallest legcf model"):
        plan(config("legcf", budget=10.0), N_USERS, N_ITEMS)
    # one code an entity (1,000 bytes), its codebook (16,384) and the items' scales (800) are the smallest coded ud
    with pytest.raises(BudgetError, match=r"18184 served bytes .* at pq_subspaces=1, d=32"):
        plan(config("ud", budget_bytes=16_000, pq_subspaces=8, **served), N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="budget_counts"):
        config("ud", budget_counts="shipped")


def test_legcf_and_c2f_codebooks_stop_at_n_over_entities_per_row() -> None:
    # 50% of 128,000 fits m_c = 375 uncapped (test above); 64 entities a row caps it at 1000 // 64 = 15 rows
    capped = plan(config("legcf", budget=50.0, budget_entities_per_row=64), N_USERS, N_ITEMS)
    assert capped is not None and (capped.value, capped.knob_max, capped.next_planned_bytes) == (15, 15, None)
    assert capped.planned_bytes == bytes_at(config("legcf"), 15, N_USERS, N_ITEMS) < capped.budget_bytes
    assert capped.report(achieved_bytes=1).knob_max == 15
    # c2f: m_c at the cap and m_r in its 3 : 1 ratio
    c2f = plan(config("c2f", budget=50.0, m_c=30, m_r=10, budget_entities_per_row=64), N_USERS, N_ITEMS)
    assert c2f is not None and c2f.sizes == {"m_c": 15, "m_r": 5}
    # where the budget binds first, bytes size it as before: 20% = 25,600 bytes, the 16,000 of the assignment arrays
    # and 128 bytes a row of E_c and H_meta -> m_c = 75, under the cap of 1000 // 8 = 125
    tight = plan(config("legcf", budget=20.0, budget_entities_per_row=8), N_USERS, N_ITEMS)
    assert tight is not None and tight.value == 75 and tight.knob_max == 125
    assert tight.next_planned_bytes is not None and tight.next_planned_bytes > tight.budget_bytes
    # the cap never goes below the rows an entity needs (t_c), and other methods ignore it
    assert plan(config("legcf", budget=50.0, budget_entities_per_row=10_000), N_USERS, N_ITEMS).value == 2  # type: ignore[union-attr]
    assert plan(config("hash", budget=10.0, budget_entities_per_row=64), N_USERS, N_ITEMS).value == 200  # type: ignore[union-attr]
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="budget_entities_per_row"):
            config("legcf", budget_entities_per_row=bad)


def test_c2f_plans_its_sparse_fine_codebook_at_the_dense_bound() -> None:
    cfg = TrainConfig(method="c2f", dim=4, m_c=5, t_c=2, m_r=3, t_r=2, biases=False)
    arrays = _stored(make_arrays("c2f", n_users=6, n_items=10, d=4, m_c=5, t_c=2, m_r=3, t_r=2), "c2f", "float16")
    nnz = len(arrays["E_r_data"])
    assert nnz < 3 * 4 and arrays["E_r_data"].dtype == np.float16 and arrays["E_r_indices"].dtype == np.uint16
    published = footprint(arrays, "c2f").embedding_bytes
    assert planned_embedding_bytes("c2f", cfg, 6, 10) == published + (3 * 4 - nnz) * (2 + 2)


def test_a_budget_below_the_smallest_model_is_refused_with_the_sizes() -> None:
    # legcf's four (N, t_c) assignment arrays alone are (2 + 2)·2·t_c = 8·t_c bytes an entity: 3.125% of d = 128
    # float32 values at t_c = 2 (item biases, float32, add 4 bytes an item)
    cfg = TrainConfig(method="legcf", budget=2.0, biases=False)
    with pytest.raises(BudgetError) as caught:
        plan(cfg, N_USERS, N_ITEMS)
    message = str(caught.value)
    assert "smallest legcf model on 600 users and 400 items" in message
    assert "at m_c=2, d=128" in message and "2% of the float32 full table" in message
    # qr's fewest rows, 32 + 32 of 128 float16 values, are 16,384 bytes, over 10,240; ud at d = 1 and hash fit
    assert "methods with a size that fits: ud, hash" in message
    with pytest.raises(BudgetError, match=r"smallest legcf model at d=128 needs on any dataset \(3\.125"):
        check_possible(cfg)
    with pytest.raises(BudgetError, match="no method has a size that fits"):
        plan(config("hash", budget_bytes=60), N_USERS, N_ITEMS)  # one row of 32 float16 values is 64 bytes


def test_check_possible_refuses_only_what_no_dataset_allows() -> None:
    check_possible(TrainConfig(method="hash", budget=1e-6, biases=False))  # B = 1 row of a huge N is tiny
    check_possible(TrainConfig(method="legcf", budget=3.2, biases=False))
    # 4 bytes an item of item biases, half the entities: +1/256 of the full table
    check_possible(TrainConfig(method="hash", budget=0.4, biases=True))
    with pytest.raises(BudgetError, match=r"smallest hash model at d=128 needs on any dataset \(0\.39"):
        check_possible(TrainConfig(method="hash", budget=0.38, biases=True))
    check_possible(TrainConfig(method="hash", budget_bytes=256, biases=False))  # one row of d = 128 float16
    check_possible(TrainConfig(method="hash"))  # no budget
    with pytest.raises(BudgetError, match="255 bytes is below the smallest hash model"):
        check_possible(TrainConfig(method="hash", budget_bytes=255, biases=False))
    with pytest.raises(BudgetError, match="smallest legcf model"):
        check_possible(TrainConfig(method="legcf", budget=3.1, biases=False))
    with pytest.raises(BudgetError, match="smallest ud model"):
        check_possible(
            TrainConfig(method="ud", budget=0.7, biases=False)
        )  # E and H_full at d = 1, float16: 4/512 = 0.78%


def test_no_budget_plans_nothing() -> None:
    cfg = config("c2f")
    assert plan(cfg, N_USERS, N_ITEMS) is None
    assert size_for_budget(cfg, N_USERS, N_ITEMS) == (cfg, None)


def _splitmix64(z: int) -> int:
    """splitmix64's finaliser in plain Python integers (the reference the numpy version must match)."""
    mask = 2**64 - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_hash_buckets_are_fixed_seeded_and_spread() -> None:
    """The map is part of the artifact format (the service recomputes it from the seed): splitmix64 of
    mix(seed) + (i + 1)·γ, computed here in plain integers; seed-dependent and about uniform."""
    seed, buckets = 11, 5
    reference = [_splitmix64((_splitmix64(seed) + (i + 1) * 0x9E3779B97F4A7C15) % 2**64) % buckets for i in range(200)]
    assert hash_buckets(200, buckets, seed).tolist() == reference
    assert hash_buckets(8, 5, 11).tolist() == PINNED_HASH
    assert not np.array_equal(hash_buckets(1000, 50, 1), hash_buckets(1000, 50, 2))
    counts = np.bincount(hash_buckets(100_000, 50, 3), minlength=50)
    assert counts.min() > 1800 and counts.max() < 2200  # expected 2000 a bucket, sd ≈ 44


PINNED_HASH = [3, 0, 0, 2, 4, 2, 3, 1]


def test_sized_configs_keep_everything_else() -> None:
    cfg = config("c2f", budget=60.0, m_c=30, m_r=10, t_r=3, lr=0.05)
    sized, chosen = size_for_budget(cfg, N_USERS, N_ITEMS)
    assert chosen is not None
    changed = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(sized, f.name)}
    assert changed <= {"m_c", "m_r"} and sized.lr == 0.05 and sized.m_r == max(3, round(sized.m_c / 3))


def test_served_budgets_with_users_folded_in_size_the_items_alone() -> None:
    """served_users="fold_in": the 600 users hold no codes, the map (d·d + d float32) is held instead. Hand-computed
    at d = 32 on 600 users and 400 items: 400·M + M·256·(32/M)·2 + 400·2 (scales) + 32·33·4 (map) = 400·M + 21,408;
    a budget of 24,800 bytes -> M = 8 (24,608), the next divisor 16 is 27,808. Users' codes would cost 600·M more."""
    served = {"budget_counts": "served", "served_users": "fold_in", "pq_subspaces": 8}
    folded = plan(config("ud", budget_bytes=24_800, **served), N_USERS, N_ITEMS)
    assert folded is not None and folded.sizes == {"pq_subspaces": 8}
    assert (folded.planned_bytes, folded.next_planned_bytes) == (24_608, 27_808)


def test_a_percentage_is_of_the_reference_table_when_given() -> None:
    """budget_reference_dim: 10% of the d = 64 table at d = 32 is 1000·64·4/10 = 25,600 bytes."""
    at_reference = config("ud", budget=10.0, budget_reference_dim=64, budget_counts="served", pq_subspaces=8)
    chosen = plan(at_reference, N_USERS, N_ITEMS)
    assert chosen is not None and (chosen.budget_bytes, chosen.full_table_bytes) == (25_600, 256_000)
    assert plan(config("ud", budget=10.0), N_USERS, N_ITEMS).budget_bytes == 12_800  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="budget_reference_dim must be a positive integer"):
        config("ud", budget=10.0, budget_reference_dim=0)
