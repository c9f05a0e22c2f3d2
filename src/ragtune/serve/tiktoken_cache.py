"""Offline tiktoken for clients: a ``TIKTOKEN_CACHE_DIR`` holding the OpenAI encodings.

LangChain's ``OpenAIEmbeddings`` at its defaults tokenizes with tiktoken (``cl100k_base``) and
sends token arrays; tiktoken downloads its encoding file on first use, so on a machine without
internet the client fails before it reaches the server. tiktoken reads a cached file instead
when ``TIKTOKEN_CACHE_DIR`` holds one named after the SHA-1 of its download URL and whose
SHA-256 is the one tiktoken expects. ``bpe-openai`` (the serve extra) bundles these very files
(gzipped): :func:`write_tiktoken_cache` writes them where tiktoken looks, and checks the hash
tiktoken will check.

Example::

    cache = write_tiktoken_cache("~/.cache/tiktoken")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)   # before tiktoken loads an encoding
    OpenAIEmbeddings(base_url="http://127.0.0.1:8000/v1", api_key="unused").embed_query("hi")
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from ragtune.errors import RagtuneError
from ragtune.io import atomic_write_bytes
from ragtune.serve.openai_api import TOKEN_ENCODINGS, TokenEncoding

URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
"""Where tiktoken downloads an encoding from (``tiktoken_ext/openai_public.py``)."""
SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
"""The ``expected_hash`` tiktoken checks a cached file against."""


def cache_name(encoding: TokenEncoding) -> str:
    """The file name tiktoken looks for in ``TIKTOKEN_CACHE_DIR``: SHA-1 of the URL."""
    return hashlib.sha1(URL.format(name=encoding).encode()).hexdigest()


def write_tiktoken_cache(
    cache_dir: str | Path, encodings: Iterable[TokenEncoding] = TOKEN_ENCODINGS
) -> Path:
    """Write the ``encodings`` from bpe-openai's bundled data into ``cache_dir``; return it.

    A file already there with the right hash is left as it is; one with another hash is an
    error (tiktoken would delete it and download again).
    """
    folder = Path(cache_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    for encoding in encodings:
        if encoding not in SHA256:
            raise RagtuneError(f"unknown encoding {encoding!r}; choose {', '.join(SHA256)}")
        target = folder / cache_name(encoding)
        if target.exists():
            if hashlib.sha256(target.read_bytes()).hexdigest() != SHA256[encoding]:
                raise RagtuneError(
                    f"{target} is not tiktoken's {encoding} file (its hash differs); move it away"
                )
            continue
        data = _bundled(encoding)
        if hashlib.sha256(data).hexdigest() != SHA256[encoding]:
            raise RagtuneError(f"bpe-openai's {encoding} differs from tiktoken's; not written")
        atomic_write_bytes(target, data)
    return folder


def _bundled(encoding: TokenEncoding) -> bytes:
    try:
        packed = resources.files("bpe_openai.data").joinpath(f"{encoding}.tiktoken.gz")
        return gzip.decompress(packed.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError):
        raise RagtuneError(
            "writing the tiktoken cache needs bpe-openai: install the serve extra with "
            "`pip install 'ragtune[serve]'`"
        ) from None
