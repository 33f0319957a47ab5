"""Embedding backends (int8 MiniLM on onnxruntime, a hashing fallback) for learned routing and
evaluation; `backends` loads its models lazily."""
