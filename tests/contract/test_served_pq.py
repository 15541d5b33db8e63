"""The product-quantized serving form in the artifact contract: optional arrays any method may carry
(pq_codes, pq_codebooks), their checks, and the footprint of what compressed serving then reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import ArtifactError, load_artifact, version_path
from c2f.contract.config import TrainConfig
from c2f.contract.footprint import footprint, planned_array_bytes
from tests.fixtures import build_artifact, make_arrays, with_pq


@pytest.mark.parametrize("method", ["ud", "legcf", "c2f", "hash"])
def test_any_method_may_carry_the_form(artifact_root: Path, method: str) -> None:
    arrays = with_pq(make_arrays(method, d=4), subspaces=2, centroids=8)
    art = load_artifact(version_path(artifact_root, build_artifact(artifact_root, method, arrays=arrays)))
    np.testing.assert_array_equal(art.arrays["pq_codes"], arrays["pq_codes"])
    fp = art.footprint
    pq_bytes = arrays["pq_codes"].nbytes + arrays["pq_codebooks"].nbytes
    assert fp.pq_subspaces == 2 and fp.components["pq"] == pq_bytes
    if method in ("legcf", "c2f"):  # the codes add to the sparse form: compressed serving reads both
        sparse = sum(arrays[n].nbytes for n in ("S_c_idx_served", "S_c_w_served", "H_meta"))
        assert fp.served_form == "sparse+pq" and fp.served_terms == 2
        assert fp.compressed_serving_bytes == sparse + pq_bytes
    else:
        assert fp.served_form == "pq" and fp.compressed_serving_bytes == pq_bytes


def test_without_the_form_legcf_serves_sparse(artifact_root: Path) -> None:
    fp = footprint(make_arrays("legcf"), "legcf")
    assert fp.served_form == "sparse" and fp.pq_subspaces is None and fp.served_terms == 2
    assert footprint(make_arrays("ud"), "ud").served_form is None  # ud's compressed mode reads its stored table


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("pq_codebooks"), "needs both pq_codes and pq_codebooks"),
        (lambda a: a.update(pq_codes=a["pq_codes"].astype(np.int32)), "pq_codes.*expected uint8"),
        (lambda a: a.update(pq_codes=a["pq_codes"][:-1]), "pq_codes.*expected N="),
        (lambda a: a.update(pq_codes=np.full_like(a["pq_codes"], 8)), r"pq_codes has values outside \[0, pq_k=8\)"),
        (lambda a: a.update(pq_codebooks=a["pq_codebooks"][:, :, :1]), "not d=4"),
        (lambda a: a.update(pq_codebooks=np.zeros((2, 300, 2), np.float32)), "uint8 codes need 1..256"),
        (lambda a: a["pq_codebooks"].__setitem__((0, 0, 0), np.nan), "pq_codebooks.*NaN"),
        (lambda a: [a.pop("pq_codes"), a.pop("pq_codebooks")], "needs both pq_codes and pq_codebooks"),
        (lambda a: a.update(pq_item_scale=a["pq_item_scale"][:-1]), "pq_item_scale.*expected n_items="),
        (lambda a: a["pq_item_scale"].__setitem__(0, np.inf), "pq_item_scale.*infinite"),
    ],
)
def test_a_bad_form_is_never_published(artifact_root: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    arrays = with_pq(make_arrays("legcf", d=4), subspaces=2, centroids=8, item_scale=True)
    mutate(arrays)
    with pytest.raises(ArtifactError, match=message):
        build_artifact(artifact_root, "legcf", arrays=arrays)


def test_planned_bytes_count_the_form() -> None:
    """A budget plan (c2f/contract/footprint.py) counts the codes and the stored codebooks as export writes them."""
    config = TrainConfig(method="ud", dim=64, pq_subspaces=8)
    planned = planned_array_bytes("ud", config, 1000, 2000)
    assert planned["pq_codes"] == 3000 * 8
    assert planned["pq_codebooks"] == 8 * 256 * 8 * 2  # float16, the default store_dtype
    assert "pq_codes" not in planned_array_bytes("ud", TrainConfig(method="ud", dim=64), 1000, 2000)
    assert planned["pq_item_scale"] == 2000 * 2  # codes alone: each item's float16 norm scale, by default
    legcf = TrainConfig(method="legcf", dim=64, pq_subspaces=8)  # on the sparse form: off by default
    assert "pq_item_scale" not in planned_array_bytes("legcf", legcf, 1000, 2000)
    asked = TrainConfig(method="legcf", dim=64, pq_subspaces=8, pq_item_norms=True)
    assert planned_array_bytes("legcf", asked, 1000, 2000)["pq_item_scale"] == 2000 * 2
    assert not TrainConfig(method="ud", pq_item_norms=True).item_norms_served  # nothing to scale without codes


def test_item_scales_count_with_the_form(artifact_root: Path) -> None:
    arrays = with_pq(make_arrays("ud", d=4), subspaces=2, centroids=8, item_scale=True)
    fp = load_artifact(version_path(artifact_root, build_artifact(artifact_root, "ud", arrays=arrays))).footprint
    form = sum(arrays[n].nbytes for n in ("pq_codes", "pq_codebooks", "pq_item_scale"))
    assert fp.components["pq"] == fp.compressed_serving_bytes == fp.serving_memory_bytes == form


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pq_subspaces": 7}, r"pq_subspaces \(7\) must divide dim \(128\)"),
        ({"pq_subspaces": -1}, "pq_subspaces must be 0 \\(none\\) or a positive integer"),
        ({"pq_item_norms": "yes"}, "pq_item_norms must be true, false or null"),
    ],
)
def test_bad_settings_give_clear_errors(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({"method": "c2f", **values})


def test_post_train_accepts_and_bounds_the_setting() -> None:
    from pydantic import ValidationError

    from c2f.contract.jobspec import TrainParams

    assert TrainParams.model_validate({"pq_subspaces": 8}).pq_subspaces == 8  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match=r"pq_subspaces \(3\) must divide dim \(64\)"):
        TrainParams.model_validate({"pq_subspaces": 3, "dim": 64})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TrainParams.model_validate({"pq_subspaces": -2})
