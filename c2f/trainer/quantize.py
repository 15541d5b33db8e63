"""Product quantization of the served embeddings: an entity served from one byte per subspace.

The product quantizer (Jégou, Douze & Schmid, "Product quantization for nearest neighbor search", TPAMI 2011)
splits each d-dim vector into M sub-vectors of d/M dims and replaces each by the nearest of K = 256 centroids of its
subspace: an entity costs M uint8 codes, plus M·K·(d/M) codebook values shared by all entities. Before splitting,
the vectors are rotated by the eigen-allocated PCA basis of Ge et al. ("Optimized product quantization",
CVPR 2013, the non-parametric OPQ-NP): principal directions are dealt to the subspaces so that each subspace holds a
similar product of variances. The rotation is orthogonal, so dot products and norms (all that ranking and cosine
similarity read) are unchanged and it need not be stored: the served vectors live in the rotated basis.

Shapes: ``H`` (N, d) float32 vectors; ``codes`` (N, M) uint8; ``codebooks`` (M, K, d/M) float32.
"""

from __future__ import annotations

import numpy as np

from c2f.contract.dtypes import store_float

CENTROIDS = 256  # K: one uint8 code per subspace


def eigen_allocated_rotation(H: np.ndarray, subspaces: int) -> np.ndarray:
    """(d, d) orthogonal R whose columns are H's principal directions dealt to ``subspaces`` equal blocks.

    Greedy allocation (OPQ-NP): directions in decreasing order of variance, each to the non-full block whose sum of
    log-variances is smallest, so every block gets a balanced share of the signal. ``H @ R`` is the rotated data."""
    d = H.shape[1]
    width = d // subspaces
    centred = H.astype(np.float64) - H.mean(axis=0)
    variances, vectors = np.linalg.eigh(centred.T @ centred / max(1, H.shape[0] - 1))
    order = np.argsort(variances)[::-1]
    log_var = np.log(np.maximum(variances[order], 1e-12))
    blocks: list[list[int]] = [[] for _ in range(subspaces)]
    load = np.zeros(subspaces)
    for rank, direction in enumerate(order):
        open_blocks = [b for b in range(subspaces) if len(blocks[b]) < width]
        target = min(open_blocks, key=lambda b: load[b])
        blocks[target].append(int(direction))
        load[target] += log_var[rank]
    columns = [c for block in blocks for c in block]
    return vectors[:, columns].astype(np.float32)


def nearest(X: np.ndarray, centroids: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest centroid (K, ds) for each row of X (n, ds) -> (n,) int64; chunked, O(chunk · K)."""
    c_sq = (centroids.astype(np.float32) ** 2).sum(axis=1)
    out = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], chunk):
        block = X[start : start + chunk].astype(np.float32)
        out[start : start + chunk] = (c_sq - 2.0 * block @ centroids.T).argmin(axis=1)
    return out


def kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k rows of X (n, ds) drawn by k-means++ (Arthur & Vassilvitskii 2007): each next row with probability
    proportional to its squared distance from the rows already drawn. -> (k, ds) float32. O(k·n·ds).

    Why not k rows at random: on planted prototypes a random start leaves ~1 prototype in 8 without a centroid
    of its own (tests/trainer/test_quantize.py), and Lloyd's iterations never split what was merged."""
    centroids = np.empty((k, X.shape[1]), dtype=np.float32)
    centroids[0] = X[rng.integers(X.shape[0])]
    distance = ((X - centroids[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        total = float(distance.sum())
        pick = int(rng.choice(X.shape[0], p=distance / total)) if total > 0 else int(rng.integers(X.shape[0]))
        centroids[j] = X[pick]
        np.minimum(distance, ((X - centroids[j]) ** 2).sum(axis=1), out=distance)
    return centroids


def kmeans(X: np.ndarray, k: int, iters: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means on X (n, ds) from a k-means++ start -> (k, ds) float32 centroids.

    An empty cluster is re-seeded with the row farthest from its centroid, so all k centroids stay in use."""
    X = X.astype(np.float32)
    k = min(k, X.shape[0])
    centroids = kmeans_plus_plus(X, k, rng)
    for _ in range(iters):
        assign = nearest(X, centroids)
        counts = np.bincount(assign, minlength=k)
        sums = np.stack([np.bincount(assign, weights=X[:, j], minlength=k) for j in range(X.shape[1])], axis=1)
        filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        if not filled.all():
            error = ((X - centroids[assign]) ** 2).sum(axis=1)
            far = np.argsort(error)[::-1][: int((~filled).sum())]
            centroids[~filled] = X[far]
    return centroids


def _fit_sample(H: np.ndarray, sample: int, rng: np.random.Generator, fit_rows: np.ndarray | None) -> np.ndarray:
    """The rows of H (N, d) the quantizer is fitted on: at most ``sample`` of ``fit_rows`` (None: all rows)."""
    pool = np.arange(H.shape[0]) if fit_rows is None else np.asarray(fit_rows, dtype=np.int64)
    return H[pool] if sample >= pool.size else H[np.sort(rng.choice(pool, size=sample, replace=False))]


def rotation_for(
    H: np.ndarray, subspaces: int, *, sample: int = 131072, seed: int = 0, fit_rows: np.ndarray | None = None
) -> np.ndarray:
    """(d, d) the eigen-allocated rotation :func:`fit_pq` computes for the same arguments (the same seeded sample),
    for a caller that must move other vectors into the codes' basis (the users' fold-in targets)."""
    return eigen_allocated_rotation(_fit_sample(H, sample, np.random.default_rng(seed), fit_rows), subspaces)


def fit_pq(
    H: np.ndarray,
    subspaces: int,
    *,
    iters: int = 25,
    sample: int = 131072,
    seed: int = 0,
    store_dtype: str = "float32",
    rotation: np.ndarray | None = None,
    fit_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Quantize H (N, d) with ``subspaces`` (M, dividing d) sub-quantizers of 256 centroids in the basis
    ``rotation`` ((d, d) orthogonal; None: the eigen-allocated one; the identity keeps H's own basis, which decoded
    vectors added to others need). The centroids are fitted on a seeded sample of at most ``sample`` rows of
    ``fit_rows`` (None: every row; all of them when fewer); every row is then encoded against the centroids as
    stored (``store_dtype``, float16 rounding included). Returns (codes (N, M) uint8, codebooks (M, 256, d/M) in
    ``store_dtype``; unused centroids are zero)."""
    N, d = H.shape
    if subspaces < 1 or d % subspaces:
        raise ValueError(f"pq_subspaces must divide d = {d}; got {subspaces}")
    rng = np.random.default_rng(seed)
    train = _fit_sample(H, sample, rng, fit_rows)
    if rotation is None:
        rotation = eigen_allocated_rotation(train, subspaces)
    width = d // subspaces
    codebooks = np.zeros((subspaces, CENTROIDS, width), dtype=np.dtype(store_dtype))
    codes = np.empty((N, subspaces), dtype=np.uint8)
    for m in range(subspaces):
        block = slice(m * width, (m + 1) * width)
        sub_rotation = rotation[:, block]
        centroids = store_float(kmeans(train @ sub_rotation, CENTROIDS, iters, rng), store_dtype)
        codebooks[m, : centroids.shape[0]] = centroids
        centroids = centroids.astype(np.float32)
        for start in range(0, N, 262144):  # encode every row, a block at a time (the rotated block is N × d/M)
            rows = slice(start, start + 262144)
            codes[rows, m] = nearest(H[rows] @ sub_rotation, centroids)
    return codes, codebooks
