"""Matrix-factorisation router: prompt vector × learned model vectors, for any number of models.

A prompt's input x = [standardised text features, embedding · emb_scale] is projected to a k-dim
vector p = x·W; each model m has a learned vector v_m and bias c_m; predicted quality is
σ(p·v_m + c_m) for 0/1 scores (else p·v_m + c_m). All models share the projection, so a model with
few scored prompts borrows from the others — the point of factorising over N models. Trained here
with full-batch Adam in numpy (deterministic for a seed, seconds for 4k prompts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import LearnedRouter, load_npz_arrays, register_kind
from .classifier import design, imputes_format, is_binary, link_fn, standardiser


@register_kind
class MFRouter(LearnedRouter):
    kind = "mf"
    uses_features = True

    def __init__(self, models: Sequence[str], embedding: str, *, W: np.ndarray, V: np.ndarray, c: np.ndarray,
                 mu: np.ndarray, sd: np.ndarray, emb_scale: float, link: str, impute: bool = False,
                 **common: Any) -> None:
        super().__init__(models, embedding, **common)
        m = len(self.models)
        if W.ndim != 2 or W.shape[0] != len(mu) + self.dim or V.shape != (m, W.shape[1]) or c.shape != (m,) \
                or mu.shape != sd.shape or link not in ("logistic", "identity"):
            raise ValueError("mf arrays do not fit the header")
        self.W, self.V, self.c, self.mu, self.sd = W, V, c, mu, sd
        self.emb_scale, self.link, self.impute = float(emb_scale), link, bool(impute)

    @classmethod
    def fit(cls, models: Sequence[str], embedding: str, E: np.ndarray, F: np.ndarray | None, Y: np.ndarray, *,
            dim: int = 8, l2: float = 1e-2, epochs: int = 150, lr: float = 0.01, emb_scale: float = 1.0,
            seed: int = 0, **common: Any) -> MFRouter:
        assert F is not None
        mu, sd = standardiser(F)
        X = design(E, F, mu, sd, emb_scale)
        Y = np.asarray(Y, dtype=np.float64)
        binary = is_binary(Y)
        known = ~np.isnan(Y)  # sparse data: only scored entries contribute to the loss
        Y = np.nan_to_num(Y)
        n, d = X.shape
        m = Y.shape[1]
        rng = np.random.default_rng(seed)
        W = rng.normal(0, 1 / np.sqrt(d), (d, dim))
        V = rng.normal(0, 1 / np.sqrt(dim), (m, dim))
        mean = (Y * known).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
        c = np.log(np.clip(mean, 1e-3, 1 - 1e-3) / (1 - np.clip(mean, 1e-3, 1 - 1e-3))) if binary else mean.copy()
        params = [W, V, c]
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        b1, b2, eps = 0.9, 0.999, 1e-8
        for step in range(1, epochs + 1):
            P = X @ W
            Z = P @ V.T + c
            G = known * ((1 / (1 + np.exp(-Z))) - Y if binary else 2 * (Z - Y)) / n
            grads = [X.T @ (G @ V) + l2 * W, G.T @ P + l2 * V, G.sum(axis=0)]
            for p, g, a, v in zip(params, grads, m1, m2, strict=True):
                a *= b1
                a += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= lr * (a / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps)
        return cls(models, embedding, W=W.astype(np.float32), V=V.astype(np.float32), c=c.astype(np.float32),
                   mu=mu, sd=sd, emb_scale=emb_scale,
                   link="logistic" if binary else "identity", impute=imputes_format(F), **common)

    def _predict(self, E: np.ndarray, F: np.ndarray | None) -> np.ndarray:
        assert F is not None
        X = design(E, F, self.mu, self.sd, self.emb_scale, self.impute)
        return link_fn((X @ self.W) @ self.V.T + self.c, self.link)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "V": self.V, "c": self.c, "mu": self.mu, "sd": self.sd}

    def _params(self) -> dict[str, Any]:
        return {"emb_scale": self.emb_scale, "link": self.link, "impute": self.impute}

    @classmethod
    def _from_file(cls, header: dict[str, Any], arrays: dict[str, np.ndarray], common: dict[str, Any]) -> MFRouter:
        W, V, c, mu, sd = load_npz_arrays(arrays, "W", "V", "c", "mu", "sd")
        p = header.get("params") or {}
        return cls(common.pop("models"), common.pop("embedding"), W=W, V=V, c=c, mu=mu, sd=sd,
                   emb_scale=p["emb_scale"], link=p["link"], impute=bool(p.get("impute", False)), **common)
