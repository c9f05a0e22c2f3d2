"""Fixtures for the HTTP tests: a running server over the search tests' sample index."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

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


@pytest.fixture(scope="module")
def client(server_url) -> Iterator[httpx.Client]:
    """An HTTP client on the shared server (the OpenAI contract and HTTP tests)."""
    import httpx

    with httpx.Client(base_url=server_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):  # noqa: F811 - the fixture imported above
    """The server's model loaded directly, to compare vectors with what the server returns."""
    from ragtune.model import Encoder

    return Encoder.load(tiny_model_dir, device="cpu")
