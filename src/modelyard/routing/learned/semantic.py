"""Semantic router: each route is a handful of example utterances; a prompt goes to the route whose
examples it is most similar to (cosine of MiniLM embeddings), or to the default when nothing is
similar enough. Configured, not trained: the examples are embedded once, at config load.

    model_groups:
      auto:
        deployments: [sim/fast, sim/frontier]
        strategy: semantic
        options:
          threshold: 0.45
          default: sim/fast
          routes:
            sim/frontier: ["prove that there are infinitely many primes", "design a distributed lock"]
            sim/fast: ["hi there", "translate 'thank you' to French"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...embed.backends import MINILM, get_embedder


class SemanticRouter:
    """`predict(prompt) -> {route: similarity}`: the best cosine between the prompt and the route's examples."""

    def __init__(self, routes: Mapping[str, Sequence[str]], *, backend: str = MINILM) -> None:
        self.names = list(routes)
        self.embedder = get_embedder(backend)
        examples = [u for r in self.names for u in routes[r]]
        self.owner = np.array([i for i, r in enumerate(self.names) for _ in routes[r]])
        self.X = self.embedder.embed(examples)

    def similarities(self, E: np.ndarray) -> np.ndarray:
        """(n prompts, n routes): max similarity to each route's examples."""
        S = E @ self.X.T
        out = np.full((len(E), len(self.names)), -1.0, dtype=np.float32)
        for i in range(len(self.names)):
            out[:, i] = S[:, self.owner == i].max(axis=1)
        return out

    def predict_embedding(self, e: np.ndarray) -> dict[str, float]:
        row = self.similarities(e.reshape(1, -1))[0]
        return {r: float(row[i]) for i, r in enumerate(self.names)}

    def predict(self, prompt: str) -> dict[str, float]:
        return self.predict_embedding(self.embedder.embed([prompt])[0])
