"""Product quantization of the served vectors (c2f/trainer/quantize.py), on vectors whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from c2f.contract.reconstruct import pq_embeddings
from c2f.trainer.quantize import eigen_allocated_rotation, fit_pq, kmeans


def _prototypes(n: int = 3000, d: int = 32, k: int = 120, noise: float = 1e-3, seed: int = 0) -> np.ndarray:
    """n vectors, each one of k random prototypes plus tiny noise: a quantizer with 256 centroids a subspace can
    represent every one of them, whatever the basis."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((k, d)).astype(np.float32)
    return protos[rng.integers(0, k, n)] + noise * rng.standard_normal((n, d)).astype(np.float32)


def _gram_error(H: np.ndarray, decoded: np.ndarray) -> float:
    """Relative error of all dot products (what ranking reads): rotation-free."""
    return float(np.abs(H @ H.T - decoded @ decoded.T).mean() / np.abs(H @ H.T).mean())


def test_planted_prototypes_are_recovered_and_dot_products_kept() -> None:
    H = _prototypes()
    codes, books = fit_pq(H, 4, seed=1)
    assert codes.shape == (3000, 4) and codes.dtype == np.uint8
    assert books.shape == (4, 256, 8) and books.dtype == np.float32
    decoded = pq_embeddings(codes, books)
    assert _gram_error(H, decoded) < 1e-2
    # norms are those of the original vectors (the rotation is orthogonal; it is not stored)
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), np.linalg.norm(H, axis=1), rtol=2e-2)


def test_more_subspaces_quantize_finer() -> None:
    """Gaussian vectors have no prototypes: the error falls as codes (bytes per entity) are added."""
    H = np.random.default_rng(3).standard_normal((1500, 16)).astype(np.float32)
    errors = [_gram_error(H, pq_embeddings(*fit_pq(H, m, iters=8, seed=0))) for m in (1, 4, 16)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_the_rotation_is_orthogonal_and_balances_the_variance() -> None:
    rng = np.random.default_rng(5)
    H = (rng.standard_normal((2000, 16)) * np.geomspace(10, 0.1, 16)).astype(np.float32)  # variance on few axes
    R = eigen_allocated_rotation(H, 4)
    np.testing.assert_allclose(R.T @ R, np.eye(16), atol=1e-5)
    per_block = np.log((H @ R).var(axis=0)).reshape(4, 4).sum(axis=1)  # log-product of variances per subspace
    naive = np.log(H.var(axis=0)).reshape(4, 4).sum(axis=1)  # the original axes in order
    assert np.ptp(per_block) < 0.25 * np.ptp(naive)


def test_float16_codebooks_and_encoding_against_them() -> None:
    H = _prototypes(n=800, d=16, k=40)
    codes, books = fit_pq(H, 2, store_dtype="float16", seed=2)
    assert books.dtype == np.float16
    assert _gram_error(H, pq_embeddings(codes, books)) < 1e-2


def test_kmeans_keeps_every_centroid_in_use() -> None:
    X = np.repeat(np.eye(4, dtype=np.float32), [50, 50, 50, 50], axis=0)  # four distinct points
    centroids = kmeans(X, 4, 10, np.random.default_rng(0))
    assert sorted(map(tuple, np.round(centroids, 3))) == sorted(map(tuple, np.eye(4)))


def test_subspaces_must_divide_d() -> None:
    with pytest.raises(ValueError, match="pq_subspaces must divide d = 32; got 5"):
        fit_pq(np.zeros((10, 32), np.float32), 5)
