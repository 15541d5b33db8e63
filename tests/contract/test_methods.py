"""The method registry drives the version names, the #param formulas and the array contract."""

from __future__ import annotations

import re

import pytest

from c2f.contract.artifact import VERSION_PATTERN, make_version_name, required_arrays
from c2f.contract.config import TrainConfig
from c2f.contract.footprint import params_paper
from c2f.contract.methods import COARSE_METHODS, METHODS, REGISTRY, MethodError, get_spec


def test_registry_holds_the_methods() -> None:
    assert METHODS == ("ud", "legcf", "c2f", "hash", "qr") and set(REGISTRY) == set(METHODS)
    assert COARSE_METHODS == ("legcf", "c2f")
    for name in METHODS:
        assert re.fullmatch(VERSION_PATTERN, make_version_name(name))
    assert not re.fullmatch(VERSION_PATTERN, make_version_name("svd"))
    with pytest.raises(MethodError, match="unknown method 'svd'"):
        get_spec("svd")
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="svd")


def test_paper_formulas() -> None:
    n, d = 1000, 64
    assert params_paper("ud", n, d) == n * d
    assert params_paper("legcf", n, d, m_c=300, t_c=2) == 2 * n + 300 * d
    assert params_paper("c2f", n, d, m_c=300, t_c=2, m_r=100, t_r=4) == 2 * n + 300 * d + 100 * d + 4 * 300
    assert params_paper("hash", n, d, B=50) == 50 * d
    assert params_paper("qr", n, d, qr_q=32, qr_m=32) == 64 * d


def test_array_sets_nest() -> None:
    ud, legcf, c2f, hashed, qr = (set(required_arrays(m)) for m in METHODS)
    assert {"H_full", "E"} <= ud and not ud & {"H_meta"}
    assert legcf < c2f and {"S_r_idx", "E_r_data"} <= c2f - legcf
    assert hashed - ud == {"hash_table"} and qr - ud == {"qr_Q", "qr_R"}  # no stored (N, d) table, no indices
    for name in METHODS:
        fields = get_spec(name).manifest_fields(TrainConfig(method=name))
        assert set(fields["shape"]) == {"m_c", "t_c", "m_r", "t_r"}
