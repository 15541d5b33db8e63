"""Fine-stage initialisation: row selection, SparsePCA padding, and λ chosen by the sparsity it yields."""

import numpy as np
import pytest

from c2f.contract.reconstruct import soft_threshold
from c2f.trainer.fine import init_fine_codebook, lambda_for_sparsity, nonzero_fraction, select_coarse_rows


def test_soft_threshold_is_eq_16():
    x = np.array([-3.0, -0.5, 0.0, 0.2, 1.5])
    np.testing.assert_allclose(soft_threshold(x, 1.0), [-2.0, 0.0, 0.0, 0.0, 0.5])


@pytest.mark.parametrize("target", [0.25, 0.5, 0.75])
def test_lambda_yields_the_target_sparsity(target):
    E_r = np.random.default_rng(0).standard_normal((100, 128)).astype(np.float32)
    lam = lambda_for_sparsity(E_r, target)
    assert nonzero_fraction(soft_threshold(E_r, lam)) == pytest.approx(target, abs=0.01)


def test_most_used_rows_come_first_and_random_draws_with_replacement():
    S_c_idx = np.array([[0, 1], [0, 2], [0, 1], [3, 1]])
    S_c_w = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]], np.float32)
    np.testing.assert_array_equal(select_coarse_rows(S_c_idx, S_c_w, 4, 3, "most_used", 0), [0, 3, 1])
    np.testing.assert_array_equal(select_coarse_rows(S_c_idx, S_c_w, 4, 6, "most_used", 0), [0, 3, 1, 2, 0, 3])
    random_rows = select_coarse_rows(S_c_idx, S_c_w, 4, 50, "random", 0)
    assert random_rows.shape == (50,) and set(random_rows.tolist()) <= {0, 1, 2, 3}


def test_sparse_pca_init_pads_d_r_components_into_d():
    E_c = np.random.default_rng(1).standard_normal((20, 16)).astype(np.float32)
    rows = np.arange(10)
    E_r = init_fine_codebook(E_c, rows, d_r=6, ablation="none", seed=0)
    assert E_r.shape == (10, 16)
    assert ((E_r != 0).sum(axis=1) <= 6).all()
    random_init = init_fine_codebook(E_c, rows, d_r=6, ablation="A", seed=0)
    assert (random_init != 0).mean() > 0.9  # ablation A: dense random values
    np.testing.assert_array_equal(init_fine_codebook(E_c, rows, d_r=6, ablation="B", seed=0), E_c[rows])


def test_reconstruction_init_stays_in_the_coarse_coordinates():
    E_c = np.random.default_rng(2).standard_normal((40, 16)).astype(np.float32)
    rows = np.arange(20)
    E_r = init_fine_codebook(E_c, rows, d_r=12, ablation="none", seed=0, how="reconstruction")
    assert E_r.shape == (20, 16)
    assert np.corrcoef(E_r.ravel(), E_c[rows].ravel())[0, 1] > 0.8
