"""Top-k inner-product search: exact in numpy, or through a FAISS index.

Mining, evaluation, ``ragtune search`` and the server all rank documents the same way, so the
ranking code lives here once:

* :func:`top_k` is exact search over embeddings held in memory. It scores documents in chunks and
  keeps a running top-k per query, so a 1M-document corpus never needs the full ``Q x N`` score
  matrix. Ties are broken by the lower document index, so results are reproducible.
* :func:`select_top_k` is the same selection over a score matrix you already have (BM25 uses it).
* :class:`DenseIndex` wraps a FAISS index (``flat`` exact; ``hnsw``, ``ivf`` or ``ivfpq``
  approximate) with the inner-product metric; it can be saved and loaded atomically. ``ivfpq``
  (:mod:`ragtune.search.ivfpq`) is trained on a sample, filled chunk by chunk and re-ranks its
  candidates with exact vectors attached from disk (:meth:`DenseIndex.attach_vectors`).

Scores are inner products: with L2-normalised embeddings they are cosine similarities.

Example::

    scores, indices = top_k(query_emb, doc_emb, k=10)       # (Q, 10) float32, (Q, 10) int64
    index = DenseIndex.build(doc_emb)                         # "auto": flat below 100k vectors
    big = DenseIndex(384, "ivfpq"); big.train(sample, n_total=10**6); big.add(chunk); ...
    index.save("runs/index"); index = DenseIndex.load("runs/index")
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir
from ragtune.search.ivfpq import (
    DEFAULT_NPROBE,
    DEFAULT_RERANK,
    new_ivfpq,
    plan,
    pq_bits_for,
    rerank_exact,
)

IndexKind = Literal["flat", "hnsw", "ivf", "ivfpq"]
INDEX_KINDS: tuple[str, ...] = get_args(IndexKind)

AUTO_FLAT_BELOW = 100_000
"""``kind="auto"`` picks an exact flat index below this many vectors and HNSW from it on."""

AUTO_IVFPQ_FROM = 1_000_000
"""``kind="auto"`` picks IVF-PQ from this many vectors on (see :func:`choose_kind`)."""

_QUERY_BLOCK = 1024  # queries scored together; bounds the score block to _QUERY_BLOCK x chunk_size


def select_top_k(
    scores: np.ndarray, k: int, indices: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest scores of each row, best first, ties broken by the lower index.

    Args:
        scores: ``(Q, M)`` candidate scores.
        k: how many to keep per row; more than ``M`` keeps ``M``.
        indices: ``(Q, M)`` the document index of each candidate (default: column numbers).

    Returns:
        ``(scores (Q, k) float32, indices (Q, k) int64)`` sorted by descending score, then by
        ascending index.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise RagtuneError(f"scores must be a 2-D (queries, candidates) array, got {scores.shape}")
    n_rows, n_cols = scores.shape
    if indices is None:
        indices = np.broadcast_to(np.arange(n_cols, dtype=np.int64), scores.shape)
    k = min(k, n_cols)
    if k <= 0:
        return np.zeros((n_rows, 0), np.float32), np.zeros((n_rows, 0), np.int64)
    if k < n_cols:
        # argpartition finds *a* top-k set in O(M); when several candidates tie with the k-th
        # score it may keep any of them, so rows with such a tie are redone with a full sort.
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (Q, k)
        kept = np.take_along_axis(scores, part, axis=1)  # (Q, k)
        kth = kept.min(axis=1, keepdims=True)  # (Q, 1)
        ambiguous = (scores >= kth).sum(axis=1) > k  # (Q,)
        kept_idx = np.take_along_axis(indices, part, axis=1)  # (Q, k)
        for row in np.flatnonzero(ambiguous):
            cand = np.flatnonzero(scores[row] >= kth[row, 0])  # every tie, plus the better ones
            order = cand[np.lexsort((indices[row, cand], -scores[row, cand]))[:k]]
            kept[row], kept_idx[row] = scores[row, order], indices[row, order]
    else:
        kept, kept_idx = scores.copy(), np.array(indices, dtype=np.int64)
    order = np.lexsort((kept_idx, -kept), axis=-1)  # by score desc, then index asc
    return (
        np.take_along_axis(kept, order, axis=1).astype(np.float32, copy=False),
        np.take_along_axis(kept_idx, order, axis=1).astype(np.int64, copy=False),
    )


def top_k(
    queries: np.ndarray, docs: np.ndarray, k: int, *, chunk_size: int = 16_384
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k documents per query by inner product.

    Documents are scored ``chunk_size`` at a time (and queries 1,024 at a time); each chunk's
    candidates are merged with the running top-k, so memory stays at
    ``O(min(Q, 1024) x (chunk_size + k))`` whatever the corpus size.

    Args:
        queries: ``(Q, D)`` query embeddings.
        docs: ``(N, D)`` document embeddings (a ``np.memmap`` works: only one chunk is read
            into memory at a time).
        k: results per query; if ``k > N`` all ``N`` documents are returned.
        chunk_size: documents scored per step.

    Returns:
        ``(scores (Q, min(k, N)) float32, indices (Q, min(k, N)) int64)``, best first; equal
        scores are ordered by the lower document index.
    """
    if queries.ndim != 2 or docs.ndim != 2:
        raise RagtuneError(
            f"queries and docs must be 2-D arrays, got shapes {queries.shape} and {docs.shape}"
        )
    if queries.shape[1] != docs.shape[1]:
        raise RagtuneError(
            f"query dimension {queries.shape[1]} does not match document dimension "
            f"{docs.shape[1]}; were they encoded by the same model?"
        )
    if k < 1:
        raise RagtuneError(f"k must be at least 1, got {k}")
    if chunk_size < 1:
        raise RagtuneError(f"chunk_size must be at least 1, got {chunk_size}")
    n_queries, n_docs = queries.shape[0], docs.shape[0]
    k = min(k, n_docs)
    out_scores = np.zeros((n_queries, k), dtype=np.float32)
    out_indices = np.zeros((n_queries, k), dtype=np.int64)
    for q0 in range(0, n_queries, _QUERY_BLOCK):
        q = np.asarray(queries[q0 : q0 + _QUERY_BLOCK], dtype=np.float32)  # (B, D)
        best_s = np.zeros((q.shape[0], 0), dtype=np.float32)  # (B, <=k)
        best_i = np.zeros((q.shape[0], 0), dtype=np.int64)
        for d0 in range(0, n_docs, chunk_size):
            d = np.asarray(docs[d0 : d0 + chunk_size], dtype=np.float32)  # (C, D)
            chunk_s = q @ d.T  # (B, C)
            chunk_i = np.broadcast_to(np.arange(d0, d0 + d.shape[0], dtype=np.int64), chunk_s.shape)
            best_s, best_i = select_top_k(
                np.concatenate([best_s, chunk_s], axis=1),  # (B, <=k + C)
                k,
                np.concatenate([best_i, chunk_i], axis=1),
            )
        out_scores[q0 : q0 + q.shape[0]] = best_s
        out_indices[q0 : q0 + q.shape[0]] = best_i
    return out_scores, out_indices


def choose_kind(n_vectors: int) -> IndexKind:
    """The index ``kind="auto"`` builds for ``n_vectors``.

    Below :data:`AUTO_FLAT_BELOW` (100,000) vectors a flat index is exact and a full scan is
    still cheap (one matrix product per query batch); from there on HNSW usually keeps recall@10
    above 0.95 at a small fraction of the cost and needs no training. From
    :data:`AUTO_IVFPQ_FROM` (1M) vectors on, IVF-PQ with exact re-ranking: HNSW holds every float
    vector plus its graph in RAM and takes longest to build, while IVF-PQ keeps ~``dim / 8`` bytes
    per vector (benchmarks/index_scale.py has the growth curve). Plain IVF is never chosen
    automatically; ask for it by name.
    """
    if n_vectors < AUTO_FLAT_BELOW:
        return "flat"
    return "hnsw" if n_vectors < AUTO_IVFPQ_FROM else "ivfpq"


def _check_kind(kind: str) -> IndexKind:
    if kind not in INDEX_KINDS:
        valid = ", ".join([*INDEX_KINDS, "auto"])
        raise RagtuneError(f"unknown index kind {kind!r}; valid kinds: {valid}")
    return kind  # type: ignore[return-value]


class DenseIndex:
    """A FAISS inner-product index over embeddings, addressed by insertion position.

    Args:
        dim: embedding size.
        kind: ``"flat"`` (exact), ``"hnsw"`` (graph, approximate, no training), ``"ivf"``
            (inverted lists, approximate, trained on the first vectors added) or ``"ivfpq"``
            (inverted lists of product-quantised codes; :meth:`train` it on a sample first, or
            it trains on the first vectors added).
        hnsw_m: HNSW neighbours per node (more: better recall, more memory).
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search-time beam width (raised to ``k`` when smaller).
        nlist: IVF cluster count; default ``4 * sqrt(n)`` for the ``n`` vectors of the first
            batch added, capped at ``n / 39`` so that k-means has enough points per cluster.
        nprobe: IVF clusters visited per query (default 32 for ivf, 64 for ivfpq).
        pq_m: IVF-PQ sub-quantisers (default ``dim / 8``; must divide ``dim``).
        rerank: IVF-PQ candidates re-scored with the exact vectors, when attached (0: never).

    Positions returned by :meth:`search` are the order vectors were added in (0-based); keep your
    own list of document ids alongside.
    """

    def __init__(
        self,
        dim: int,
        kind: IndexKind = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int | None = None,
        pq_m: int | None = None,
        pq_bits: int | None = None,
        train_size: int | None = None,
        rerank: int = DEFAULT_RERANK,
    ) -> None:
        import faiss

        self.kind: IndexKind = _check_kind(kind)
        if dim < 1:
            raise RagtuneError(f"dim must be at least 1, got {dim}")
        self.params: dict[str, Any] = {
            "hnsw_m": hnsw_m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "nlist": nlist,
            "nprobe": nprobe or (DEFAULT_NPROBE if kind == "ivfpq" else 32),
        }
        if kind == "ivfpq":  # the recipe, recorded in index.json (pq_bits, train_size: by train)
            self.params |= {"pq_m": pq_m, "pq_bits": pq_bits, "train_size": train_size}
            self.params["rerank"] = rerank
        self._dim = dim
        self._index: Any = None
        self._exact: np.ndarray | None = None  # (N, D) vectors for re-ranking, see attach_vectors
        if kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = ef_construction
            self._index.hnsw.efSearch = ef_search
        # "ivf" and "ivfpq" are created by train() (or the first add()), when the size is known.

    @classmethod
    def build(
        cls, vectors: np.ndarray, kind: IndexKind | Literal["auto"] = "auto", **params: Any
    ) -> DenseIndex:
        """An index of ``kind`` (``"auto"``: see :func:`choose_kind`) holding ``vectors`` (N, D)."""
        vectors = _as_matrix(vectors, "vectors")
        resolved = choose_kind(vectors.shape[0]) if kind == "auto" else _check_kind(kind)
        index = cls(vectors.shape[1], resolved, **params)
        index.add(vectors)
        return index

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def trained(self) -> bool:
        return self._index is not None

    def train(self, sample: np.ndarray, n_total: int | None = None) -> None:
        """Train an ``ivf``/``ivfpq`` index on ``sample`` (M, D) for ``n_total`` vectors to come.

        The cell count follows ``n_total`` (default: the sample size), so a sample of 200k
        trains the quantisers of a 1M-vector index; IVF-PQ uses the first ``train_size`` rows
        of the sample (see :func:`ragtune.search.ivfpq.plan`).
        """
        sample = self._checked(sample, "sample")
        if self.kind not in ("ivf", "ivfpq"):
            raise RagtuneError(f"a {self.kind} index needs no training")
        if self._index is not None:
            raise RagtuneError("the index is already trained")
        if sample.shape[0] == 0:
            raise RagtuneError("cannot train an index on 0 vectors")
        if self.kind == "ivf":
            self._train_ivf(sample)
            return
        recipe = plan(
            max(n_total or 0, sample.shape[0]),
            self._dim,
            nlist=self.params["nlist"],
            pq_m=self.params["pq_m"],
            nprobe=self.params["nprobe"],
            rerank=self.params["rerank"],
        )
        if sample.shape[0] < recipe.train_size:  # a small sample: fewer cells and PQ centroids
            train = sample.shape[0]
            cells = self.params["nlist"] or max(1, min(recipe.nlist, train // 39))
            recipe = replace(recipe, nlist=cells, train_size=train, pq_bits=pq_bits_for(train))
        if self.params["pq_bits"]:
            recipe = replace(recipe, pq_bits=self.params["pq_bits"])
        index = new_ivfpq(self._dim, recipe)
        index.train(sample[: recipe.train_size])
        self.params |= {k: v for k, v in recipe.to_dict().items() if k in self.params}
        self._index = index

    def attach_vectors(self, vectors: np.ndarray) -> None:
        """Exact vectors (N, D), row ``i`` = position ``i`` (a memmap is fine), for re-ranking.

        Only ``ivfpq`` uses them: its top ``rerank`` candidates are re-scored exactly.
        """
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise RagtuneError(f"vectors of shape {vectors.shape} do not fit dimension {self._dim}")
        self._exact = vectors

    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors`` (N, D); they get positions ``ntotal .. ntotal + N - 1``."""
        vectors = self._checked(vectors, "vectors")
        if vectors.shape[0] == 0:
            return
        if self._index is None and self.kind == "ivfpq":
            self.train(vectors)
        elif self._index is None:  # ivf: train on this first batch
            self._train_ivf(vectors)
        self._index.add(vectors)

    def _train_ivf(self, vectors: np.ndarray) -> None:
        import faiss

        n = vectors.shape[0]
        # 4 sqrt(n) lists, but no fewer than 39 training points per list (k-means needs them).
        nlist = self.params["nlist"] or max(1, min(int(4 * np.sqrt(n)), n // 39))
        nlist = min(nlist, n)
        self.params["nlist"] = nlist
        quantizer = faiss.IndexFlatIP(self._dim)
        index = faiss.IndexIVFFlat(quantizer, self._dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = self.params["nprobe"]
        self._index = index

    def search(
        self, queries: np.ndarray, k: int, *, nprobe: int | None = None, rerank: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` positions per query: ``(scores (Q, k') float32, indices (Q, k') int64)``.

        ``k' = min(k, ntotal)``. Approximate kinds may find fewer than ``k'`` results for some
        queries; those slots hold index ``-1`` and score ``-inf``.

        Args:
            nprobe: IVF cells visited for this search (default: the index's ``nprobe``).
            rerank: IVF-PQ candidates re-scored exactly (default: the index's ``rerank``; only
                with vectors attached). Re-ranked scores are exact inner products.
        """
        if nprobe is not None and nprobe < 1:
            raise RagtuneError(f"nprobe must be at least 1, got {nprobe}")
        if rerank is not None and rerank < 0:
            raise RagtuneError(f"rerank must be >= 0, got {rerank}")
        queries = self._checked(queries, "queries")
        if k < 1:
            raise RagtuneError(f"k must be at least 1, got {k}")
        k = min(k, self.ntotal)
        if k == 0:
            empty = (queries.shape[0], 0)
            return np.zeros(empty, np.float32), np.zeros(empty, np.int64)
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = max(self.params["ef_search"], k)
        extra: dict[str, Any] = {}
        if self.kind in ("ivf", "ivfpq"):
            import faiss

            probes = min(nprobe or self.params["nprobe"], self.params["nlist"])
            extra["params"] = faiss.SearchParametersIVF(nprobe=probes)  # type: ignore[call-arg]
        depth = rerank if rerank is not None else self.params.get("rerank", 0)
        if self.kind == "ivfpq" and self._exact is not None and depth > 0:
            _, candidates = self._index.search(queries, min(max(k, depth), self.ntotal), **extra)
            return rerank_exact(queries, candidates, self._exact, k)
        scores, indices = self._index.search(queries, k, **extra)
        scores = np.asarray(scores, dtype=np.float32)
        indices = np.asarray(indices, dtype=np.int64)
        scores[indices < 0] = -np.inf
        return scores, indices

    def save(self, path: str | Path) -> None:
        """Write ``index.faiss`` and ``index.json`` into folder ``path``, atomically."""
        import faiss

        if self._index is None:
            raise RagtuneError("cannot save an empty IVF index: add vectors first (it trains then)")
        meta = {"kind": self.kind, "dim": self._dim, "ntotal": self.ntotal, "params": self.params}
        with atomic_dir(path) as tmp:
            faiss.write_index(self._index, str(tmp / "index.faiss"))
            (tmp / "index.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DenseIndex:
        """Read an index written by :meth:`save`."""
        import faiss

        path = Path(path)
        meta_path, index_path = path / "index.json", path / "index.faiss"
        if not meta_path.is_file() or not index_path.is_file():
            raise RagtuneError(
                f"{path}: not a saved index (expected index.json and index.faiss inside)"
            )
        meta = json.loads(meta_path.read_text())
        index = cls(int(meta["dim"]), _check_kind(meta["kind"]), **meta["params"])
        index._index = faiss.read_index(str(index_path))
        if index.kind == "hnsw":
            index._index.hnsw.efSearch = meta["params"]["ef_search"]
        elif index.kind in ("ivf", "ivfpq"):
            index._index.nprobe = meta["params"]["nprobe"]
        return index

    def _checked(self, x: np.ndarray, name: str) -> np.ndarray:
        x = _as_matrix(x, name)
        if x.shape[1] != self._dim:
            raise RagtuneError(f"{name} have dimension {x.shape[1]}, the index has {self._dim}")
        return x

    def __repr__(self) -> str:
        return f"DenseIndex(kind={self.kind!r}, dim={self._dim}, ntotal={self.ntotal})"


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous float32 (N, D) copy or view, as FAISS requires."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise RagtuneError(f"{name} must be a 2-D (count, dim) array, got shape {x.shape}")
    return x
