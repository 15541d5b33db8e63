"""c2f/trainer/refine.py: BPR training of the product-quantized codebooks on the served scores (codes fixed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from c2f.contract.config import TrainConfig
from c2f.contract.dtypes import as_float32
from c2f.trainer.refine import ServedCodes


@pytest.fixture(scope="module")
def trained(synthetic_lightgcn_dir):  # type: ignore[no-untyped-def]
    from c2f.trainer.data import load_dataset
    from c2f.trainer.train import train

    data = load_dataset(str(synthetic_lightgcn_dir))
    config = TrainConfig(
        method="ud", dim=32, batch_size=1024, epochs=8, seed=7, pq_subspaces=4, biases=True, pq_refine_epochs=0
    )
    return data, train(data, config)


def _export(trained, **overrides):  # type: ignore[no-untyped-def]
    from c2f.trainer.export import build_arrays

    data, model = trained
    variant = dataclasses.replace(model, config=dataclasses.replace(model.config, **overrides), info={})
    return build_arrays(variant, data), variant.info


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pq_subspaces": 4, "pq_refine_epochs": -1}, "non-negative integer"),
        ({"pq_refine_epochs": 2.5}, "non-negative integer"),
        ({"pq_subspaces": 4, "pq_refine_epochs": True}, "non-negative integer"),
        ({"pq_subspaces": 4, "pq_refine_epochs": 2, "pq_refine_lr": 0}, "pq_refine_lr must be a positive"),
    ],
)
def test_bad_values_give_clear_errors(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(method="ud", **values)


def test_on_by_default_where_codes_are_stored_and_a_no_op_without(trained) -> None:  # type: ignore[no-untyped-def]
    assert TrainConfig(method="legcf").pq_refine_epochs == 60
    arrays, info = _export(trained, pq_subspaces=0, pq_refine_epochs=60)  # a full table without codes
    assert "pq_codes" not in arrays and "pq_refine" not in info


def test_the_served_model_decodes_what_the_service_decodes(trained) -> None:  # type: ignore[no-untyped-def]
    """ServedCodes' vectors are the served form's vectors of the arrays (codes, codebooks, item scales)."""
    from c2f.contract.methods import get_spec
    from c2f.contract.served import served_form

    data, _ = trained
    arrays, _ = _export(trained)
    assert "pq_item_scale" in arrays  # a table served from codes keeps item norms by default
    model = ServedCodes(
        data.n_users,
        None,
        arrays["pq_codes"],
        arrays["pq_codebooks"],
        arrays["pq_item_scale"],
        arrays.get("item_bias"),
        torch.device("cpu"),
    )
    expected = served_form(get_spec("ud"), arrays, "compressed").vectors()
    assert expected is not None
    np.testing.assert_allclose(model.full_embeddings().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_refinement_repairs_damaged_codebooks_and_keeps_the_stored_form(trained) -> None:  # type: ignore[no-untyped-def]
    """Codebooks pushed off k-means' centroids rank badly; training them on the served scores (codes fixed) brings
    validation back up. Codes, dtypes, shapes and the item biases are what export stored."""
    from c2f.trainer.refine import refine_codebooks

    data, model = trained
    arrays, _ = _export(trained)
    damaged = dict(arrays)
    rng = np.random.default_rng(0)
    books = as_float32(arrays["pq_codebooks"])
    damaged["pq_codebooks"] = (books + rng.normal(0, 2 * books.std(), books.shape)).astype(np.float16)
    codes, bias = arrays["pq_codes"].copy(), arrays["item_bias"].copy()
    config = dataclasses.replace(model.config, pq_refine_epochs=8, pq_refine_lr=1e-2)
    record = refine_codebooks(damaged, None, data, config, torch.device("cpu"))
    criterion = record["criterion"]
    start, best = record["start_valid"][criterion], record["best_valid"][criterion]
    print(f"valid {criterion}: damaged {start:.4f} -> refined {best:.4f} ({record['epochs']} epochs)")
    assert record["best_epoch"] > 0
    assert best > start + 0.02  # (seed 7: 0.1045 -> 0.1516 after 8 epochs, 0.1738 after 15)
    assert damaged["pq_codebooks"].dtype == np.float16 and damaged["pq_codebooks"].shape == books.shape
    assert damaged["pq_item_scale"].dtype == np.float16
    np.testing.assert_array_equal(damaged["pq_codes"], codes)
    np.testing.assert_array_equal(damaged["item_bias"], bias)


def test_refinement_never_keeps_worse_codebooks(trained) -> None:  # type: ignore[no-untyped-def]
    """An lr that wrecks the codebooks at the first step: every epoch validates below the start, so the export
    keeps k-means' codebooks and scales bit for bit, and the manifest's info says so."""
    plain, _ = _export(trained)
    arrays, info = _export(trained, pq_refine_epochs=3, pq_refine_lr=100.0)
    record = info["pq_refine"]
    assert record["best_epoch"] == 0 and record["epochs"] == 3
    np.testing.assert_array_equal(arrays["pq_codebooks"], plain["pq_codebooks"])
    np.testing.assert_array_equal(arrays["pq_item_scale"], plain["pq_item_scale"])


def test_the_residual_codes_of_the_sparse_form_are_refined_around_it(synthetic_lightgcn_dir) -> None:  # type: ignore[no-untyped-def]
    """legcf: the codes quantize what the sparse form leaves, so refinement starts from the sparse form plus the
    codes as served, trains the codebooks to a better validation, and leaves the sparse arrays and codes as they
    were."""
    from c2f.contract.methods import get_spec
    from c2f.contract.served import served_form
    from c2f.trainer.data import load_dataset
    from c2f.trainer.evaluate import evaluate
    from c2f.trainer.export import build_arrays
    from c2f.trainer.train import train

    data = load_dataset(str(synthetic_lightgcn_dir))
    config = TrainConfig(
        method="legcf", dim=32, m_c=24, batch_size=1024, epochs=3, seed=7, pq_subspaces=4, pq_refine_epochs=0
    )
    legcf = train(data, config)
    plain = build_arrays(legcf, data)
    refined = dataclasses.replace(config, pq_refine_epochs=3)
    variant = dataclasses.replace(legcf, config=refined, info={})
    arrays = build_arrays(variant, data)
    record = variant.info["pq_refine"]
    criterion = record["criterion"]

    def served_valid(stored):  # type: ignore[no-untyped-def]
        vectors = served_form(get_spec("legcf"), stored, "compressed").vectors()
        users, items = vectors[: data.n_users], vectors[data.n_users :]
        return evaluate(users, items, data.valid, data.train, item_bias=stored.get("item_bias"))[criterion]

    start, best = record["start_valid"][criterion], record["best_valid"][criterion]
    assert start == pytest.approx(served_valid(plain), abs=1e-6)  # it starts from the sparse form plus the codes
    assert record["best_epoch"] > 0 and best > start
    assert served_valid(arrays) == pytest.approx(best, abs=1e-3)  # the stored arrays serve the kept state
    assert not np.array_equal(arrays["pq_codebooks"], plain["pq_codebooks"])
    for name in ("S_c_idx_served", "S_c_w_served", "H_meta", "pq_codes"):
        np.testing.assert_array_equal(arrays[name], plain[name])
