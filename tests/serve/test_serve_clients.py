"""Real RAG clients at their defaults against a real server on loopback: each gets the vectors
the encoder computes itself (within 1e-5).

- LangChain ``OpenAIEmbeddings``: tokenizes with tiktoken (``cl100k_base``) and sends token
  arrays; tiktoken's encoding file comes from bpe-openai's bundled copy
  (:func:`ragtune.serve.tiktoken_cache.write_tiktoken_cache`), so nothing is downloaded.
- LlamaIndex ``OpenAIEmbedding``: strings, query and batch paths.
- chromadb's ``OpenAIEmbeddingFunction``, and a chromadb collection searched with it.

(The ``openai`` SDK itself, float and base64, is in test_openai_contract.py.) Each test skips
with its reason when its client package is not installed.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from ragtune.serve.tiktoken_cache import SHA256, cache_name, write_tiktoken_cache

DOCS = [
    "Retries use exponential backoff: the delay doubles after every failed attempt.",
    "The status line is parsed before the headers.",
    "Chunks are split at Markdown headings and blank lines.",
]
QUERY = "how long does the client wait between retries?"


@pytest.fixture(scope="module")
def tiktoken_offline(tmp_path_factory):
    """``TIKTOKEN_CACHE_DIR`` set to a cache written from bpe-openai's bundled encodings."""
    cache = write_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
    else:
        os.environ["TIKTOKEN_CACHE_DIR"] = before


def test_the_tiktoken_cache_is_the_file_tiktoken_expects(tiktoken_offline):
    tiktoken = pytest.importorskip("tiktoken", reason="tiktoken is not installed")
    import bpe_openai

    for name in ("cl100k_base", "o200k_base"):
        data = (tiktoken_offline / cache_name(name)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == SHA256[name]
        # loaded from the cache (a download would fail offline), it tokenizes as bpe-openai
        text = "Retries back off exponentially; naïve café ☕"
        assert tiktoken.get_encoding(name).encode(text) == bpe_openai.get_encoding(name).encode(
            text
        )
    assert sorted(p.name for p in tiktoken_offline.iterdir()) == sorted(
        cache_name(n) for n in SHA256
    )  # nothing else was written or fetched
    write_tiktoken_cache(tiktoken_offline)  # a second call leaves the files as they are


def test_langchain_openai_embeddings_at_its_defaults(server_url, encoder, tiktoken_offline):
    langchain_openai = pytest.importorskip(
        "langchain_openai", reason="langchain-openai is not installed"
    )
    embeddings = langchain_openai.OpenAIEmbeddings(
        base_url=f"{server_url}/v1", api_key="unused", max_retries=0
    )
    assert embeddings.check_embedding_ctx_length and embeddings.tiktoken_enabled  # defaults:
    # token arrays of cl100k_base ids, decoded by the server back to the same text
    np.testing.assert_allclose(embeddings.embed_documents(DOCS), encoder.encode(DOCS), atol=1e-5)
    np.testing.assert_allclose(embeddings.embed_query(QUERY), encoder.encode([QUERY])[0], atol=1e-5)


def test_llamaindex_openai_embedding(server_url, encoder):
    module = pytest.importorskip(
        "llama_index.embeddings.openai", reason="llama-index-embeddings-openai is not installed"
    )
    embedding = module.OpenAIEmbedding(api_base=f"{server_url}/v1", api_key="unused", max_retries=0)
    got = embedding.get_text_embedding_batch(DOCS)
    np.testing.assert_allclose(got, encoder.encode(DOCS), atol=1e-5)
    query = embedding.get_query_embedding(QUERY)
    np.testing.assert_allclose(query, encoder.encode([QUERY])[0], atol=1e-5)


def test_chromadb_openai_embedding_function_and_a_collection(server_url, encoder, monkeypatch):
    pytest.importorskip("chromadb", reason="chromadb is not installed")
    import chromadb
    from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "unused")
    function = OpenAIEmbeddingFunction(api_base=f"{server_url}/v1")
    np.testing.assert_allclose(np.array(function(DOCS)), encoder.encode(DOCS), atol=1e-5)

    client = chromadb.EphemeralClient(chromadb.Settings(anonymized_telemetry=False))
    collection = client.create_collection(
        "docs", embedding_function=function, metadata={"hnsw:space": "cosine"}
    )
    collection.add(ids=[f"d{i}" for i in range(len(DOCS))], documents=DOCS)
    found = collection.query(query_texts=[QUERY], n_results=3)
    # chromadb ranks by the server's vectors as the encoder's own vectors rank
    scores = encoder.encode(DOCS) @ encoder.encode([QUERY])[0]
    assert found["ids"][0] == [f"d{i}" for i in np.argsort(-scores)]
    stored = collection.get(ids=["d0"], include=["embeddings"])["embeddings"][0]
    np.testing.assert_allclose(stored, encoder.encode(DOCS[:1])[0], atol=1e-5)
