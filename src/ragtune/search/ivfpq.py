"""IVF-PQ: the index for corpora that outgrow a flat or HNSW index held in RAM.

An inverted file (a k-means coarse quantiser with ``nlist`` cells) over product-quantised codes
(Jégou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011), built by
FAISS (``faiss.IndexIVFPQ``, inner-product metric). Each vector is stored as ``pq_m`` bytes
(``pq_bits = 8``) instead of ``4 * dim``: 48 bytes instead of 1,536 for a 384-d model, so a
million vectors take ~50 MB of codes plus ~6 MB of centroids.

PQ scores are approximations, so the top ``rerank`` candidates of a query are re-scored exactly
with the float32 vectors the index folder keeps on disk anyway (``vectors.npy``, memory-mapped:
only the candidate rows are read) — the "IVFADC + re-ranking" of Jégou et al., "Searching in
one billion vectors: re-rank with source coding" (ICASSP 2011).

Why this recipe (``benchmarks/index_scale.py``, 384-d synthetic unit vectors, 2 shared cores):
``nlist = 4 sqrt(N)`` cells trained on a sample of ``max(50 nlist, 20k)`` vectors,
``pq_m = dim / 8`` sub-quantisers of 8 bits, ``nprobe = 64`` cells visited, ``rerank = 200``
candidates re-scored. At 100k vectors, without re-ranking recall@10 against exact search stays
near 0.70 whatever ``nprobe`` (PQ error, not the cells, loses the neighbours); re-scoring the top
100 lifts it to 0.97 at ``nprobe = 32``, the top 200 to 0.97 at ``nprobe = 64``. At 1M vectors
(``nlist`` 4000, trained on 200k) the default reaches recall@10 0.99 (0.60 without re-ranking),
p50 2.1 ms once the store's pages are cached, 60 MB of codes, 0.75 GB peak RSS while building.

Building streams: :func:`plan` fixes the cell count from the final size, the index is trained on a
sample, then vectors are added chunk by chunk, so memory is the sample plus one chunk plus the
codes, never all float vectors.

Example::

    recipe = plan(n_total=1_000_000, dim=384)           # nlist 4000, train on 200k, pq_m 48
    index = new_ivfpq(384, recipe); index.train(sample)
    for chunk in chunks: index.add(chunk)
    scores, ids = rerank_exact(queries, index.search(queries, 200)[1], vectors, k=10)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ragtune.errors import RagtuneError

DEFAULT_NPROBE = 64
DEFAULT_RERANK = 200
MIN_TRAIN = 20_000
_RERANK_BLOCK = 64  # queries re-scored together
POINTS_PER_CELL = 50  # k-means wants at least 39 training points per centroid (FAISS warns below)


@dataclass(frozen=True)
class IVFPQRecipe:
    """The settings an IVF-PQ index is built with (recorded in the index folder).

    Attributes:
        nlist: coarse cells (k-means centroids).
        pq_m: sub-quantisers; each vector becomes ``pq_m`` codes of ``pq_bits`` bits.
        pq_bits: bits per code (8: 256 centroids per sub-space).
        train_size: vectors the quantisers are trained on.
        nprobe: cells visited per query (the default; a query may ask for another).
        rerank: candidates re-scored exactly from the stored vectors (0: PQ scores only).
    """

    nlist: int
    pq_m: int
    pq_bits: int = 8
    train_size: int = MIN_TRAIN
    nprobe: int = DEFAULT_NPROBE
    rerank: int = DEFAULT_RERANK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_pq_m(dim: int) -> int:
    """``dim / 8`` sub-quantisers (8 dims each), or the nearest divisor of ``dim`` below it."""
    target = max(1, dim // 8)
    for m in range(target, 0, -1):
        if dim % m == 0:
            return m
    return 1


def plan(
    n_total: int,
    dim: int,
    *,
    nlist: int | None = None,
    pq_m: int | None = None,
    nprobe: int = DEFAULT_NPROBE,
    rerank: int = DEFAULT_RERANK,
) -> IVFPQRecipe:
    """The recipe for an index of ``n_total`` vectors of ``dim`` dimensions.

    ``nlist`` defaults to ``4 sqrt(N)`` (at most ``N / 39``); the training sample to
    ``max(50 nlist, 20k)`` vectors (all of them for a small index); ``pq_bits`` to 8, fewer for
    an index too small to train 256 centroids per sub-space on.
    """
    if n_total < 1:
        raise RagtuneError("an IVF-PQ index needs at least one vector")
    m = pq_m or default_pq_m(dim)
    if dim % m:
        raise RagtuneError(f"pq_m {m} must divide the dimension {dim}")
    cells = nlist or max(1, min(int(4 * math.sqrt(n_total)), n_total // 39))
    cells = min(cells, n_total)
    train = min(n_total, max(POINTS_PER_CELL * cells, MIN_TRAIN))
    bits = pq_bits_for(train)
    if nprobe < 1 or rerank < 0:
        raise RagtuneError(f"nprobe must be >= 1 and rerank >= 0, got {nprobe} and {rerank}")
    return IVFPQRecipe(cells, m, bits, train, nprobe, rerank)


def pq_bits_for(train_size: int) -> int:
    """8 bits per code, or fewer when the sample cannot give 39 points to each of 256 centroids."""
    return max(1, min(8, int(math.log2(max(2, train_size // 39)))))


def new_ivfpq(dim: int, recipe: IVFPQRecipe) -> Any:
    """An untrained ``faiss.IndexIVFPQ`` (inner product) for ``recipe``."""
    import faiss

    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(
        quantizer, dim, recipe.nlist, recipe.pq_m, recipe.pq_bits, faiss.METRIC_INNER_PRODUCT
    )
    index.nprobe = recipe.nprobe
    # plan() sizes the sample; a small index trains on what it has, without FAISS's warnings
    index.cp.min_points_per_centroid = 1
    index.pq.cp.min_points_per_centroid = 1
    return index


def rerank_exact(
    queries: np.ndarray, candidates: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score ``candidates`` (Q, R) with the exact ``vectors`` (N, D) and keep the best ``k``.

    ``vectors`` may be a ``np.memmap``: only the candidate rows are read, in ascending order.
    Slots holding ``-1`` (fewer candidates found) stay at the end with score ``-inf``.

    Returns:
        ``(scores (Q, min(k, R)) float32, ids (Q, min(k, R)) int64)``, best first; ties by id.
    """
    from ragtune.search.topk import select_top_k

    candidates = np.asarray(candidates, dtype=np.int64)
    q = np.asarray(queries, dtype=np.float32)  # (Q, D)
    scores = np.full(candidates.shape, -np.inf, dtype=np.float32)  # (Q, R)
    for q0 in range(0, q.shape[0], _RERANK_BLOCK):  # bounds the gathered rows to (B, R, D)
        block = candidates[q0 : q0 + _RERANK_BLOCK]  # (B, R)
        found = block >= 0
        wanted = np.unique(block[found])  # sorted: sequential reads from a memmap
        if not wanted.size:
            continue
        rows = np.asarray(vectors[wanted], dtype=np.float32)  # (U, D)
        where = np.searchsorted(wanted, np.where(found, block, wanted[0]))  # (B, R)
        exact = np.einsum("bd,brd->br", q[q0 : q0 + _RERANK_BLOCK], rows[where])  # (B, R)
        scores[q0 : q0 + _RERANK_BLOCK] = np.where(found, exact, -np.inf)
    ids = np.where(candidates >= 0, candidates, np.iinfo(np.int64).max)  # -1 slots sort last
    top_s, top_i = select_top_k(scores, k, ids)
    top_i[~np.isfinite(top_s)] = -1
    return top_s, top_i
