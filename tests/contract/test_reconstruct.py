"""contract.reconstruct.propagate: a block of columns at a time gives what propagating every column at once gives."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from c2f.contract.reconstruct import propagate


@pytest.mark.parametrize("block", [1, 3, 32, 40])
def test_blocked_layer_mean_equals_the_whole_matrix_at_once(block: int) -> None:
    rng = np.random.default_rng(0)
    adj = sp.random(60, 60, density=0.1, random_state=1, format="csr", dtype=np.float32)
    adj = (adj + adj.T).tocsr()
    X0 = rng.standard_normal((60, 40)).astype(np.float32)
    whole = X0.copy()
    total = X0.copy()
    for _ in range(3):
        whole = adj @ whole
        total += whole
    want = total / 4
    got = propagate(adj, X0, 3, block=block)
    assert got.dtype == np.float32 and got.shape == X0.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # a step replacing h -> Â·h (as the released fine stage's does) sees column blocks too
    seen: list[int] = []

    def step(h: np.ndarray) -> np.ndarray:
        seen.append(h.shape[1])
        return 0.5 * (adj @ h)

    halved = propagate(adj, X0, 2, step, block=block)
    ref = (X0 + 0.5 * (adj @ X0) + 0.25 * (adj @ (adj @ X0))) / 3
    np.testing.assert_allclose(halved, ref, rtol=1e-5, atol=1e-6)
    assert max(seen) == min(block, 40)
