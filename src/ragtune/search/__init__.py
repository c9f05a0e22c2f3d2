"""The retrieval layer: top-k search, BM25, files, chunking, the on-disk index and search over it.

Mining, evaluation and serving all retrieve; they share this one stage instead of keeping their
own copies. ``topk`` is exact / FAISS nearest-neighbour search over vectors; ``bm25`` is the one
lexical retriever (an English or a code tokenizer); ``files`` -> ``chunking`` -> ``build`` ->
``store`` turn a folder into an index on disk; ``searcher`` queries it (dense or hybrid).

Example::

    from ragtune.search import build_index, IndexConfig, search
    build_index("my-repo/", "my-repo.idx", IndexConfig(model="all-MiniLM-L6-v2"))
    hits = search("my-repo.idx", "where is the HTTP status line parsed?", k=5)
"""

from ragtune.search.build import BuildReport, IndexConfig, build_index
from ragtune.search.chunking import Chunk, chunk_text
from ragtune.search.files import walk_text_files
from ragtune.search.searcher import Hit, Searcher, reciprocal_rank_fusion, search
from ragtune.search.store import IndexStore

__all__ = [
    "BuildReport",
    "Chunk",
    "Hit",
    "IndexConfig",
    "IndexStore",
    "Searcher",
    "build_index",
    "chunk_text",
    "reciprocal_rank_fusion",
    "search",
    "walk_text_files",
]
