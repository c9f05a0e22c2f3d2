"""Fixtures for the HTTP tests: a running server over the search tests' sample index."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.search.conftest import (  # noqa: F401 - fixtures shared with the search tests
    make_sample_folder,
    sample_index,
    tiny_model_dir,
)


@pytest.fixture(scope="session")
def server_url(sample_index) -> Iterator[str]:  # noqa: F811 - the fixture above
    """A real uvicorn server over the sample index on a free loopback port."""
    from ragtune.search.searcher import Searcher
    from ragtune.serve.app import create_app
    from ragtune.serve.limits import ServeLimits
    from ragtune.serve.server import background_server

    searcher = Searcher.open(sample_index, device="cpu")
    limits = ServeLimits(max_body_bytes=100_000, max_inputs=8, max_text_chars=2_000, max_k=20)
    try:
        with background_server(create_app(searcher, limits=limits)) as url:
            yield url
    finally:
        searcher.close()
