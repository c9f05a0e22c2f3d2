"""ragtune: train, fine-tune, evaluate and serve text embedding models for RAG."""

__version__ = "0.1.0"
