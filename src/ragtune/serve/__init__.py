"""Serve an index over HTTP: the search API, an OpenAI-compatible embeddings endpoint, a page.

Only HTTP lives here (``app``, ``batcher``, ``limits``, ``server``); indexing and search are the
retrieval layer, :mod:`ragtune.search`. ``ragtune.serve.app`` needs the ``serve`` extra and is
imported only on use.
"""

from ragtune.serve.limits import ServeLimits

__all__ = ["ServeLimits"]
