"""Chunk and index a folder, search it, and serve it over HTTP.

``build_index`` walks a folder, chunks its text files with exact line numbers and embeds them;
``search`` / ``Searcher`` query the index (dense or hybrid); ``ragtune.serve.app`` (needs the
``serve`` extra, imported only on use) exposes it as an HTTP API with an OpenAI-compatible
embeddings endpoint and a web page.
"""

from ragtune.serve.build import BuildReport, IndexConfig, build_index
from ragtune.serve.chunking import Chunk, chunk_text
from ragtune.serve.files import walk_text_files
from ragtune.serve.limits import ServeLimits
from ragtune.serve.search import Hit, Searcher, reciprocal_rank_fusion, search
from ragtune.serve.store import IndexStore

__all__ = [
    "BuildReport",
    "Chunk",
    "Hit",
    "IndexConfig",
    "IndexStore",
    "Searcher",
    "ServeLimits",
    "build_index",
    "chunk_text",
    "reciprocal_rank_fusion",
    "search",
    "walk_text_files",
]
