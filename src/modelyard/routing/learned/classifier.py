"""Classifier router: one regularised linear model per model over [text features, embedding].

Inputs are the standardised topic-free text features (textfeatures.py) next to the unit-length
prompt embedding scaled by `emb_scale`. The default `emb_scale` is 0: features only. Measured on
held-out MMLU subjects and on prompts of other kinds (docs/LEARNED_ROUTING.md), the embedding block
adds in-distribution accuracy (it learns subjects) and nothing that transfers, while costing an
embedding per decision (~10–30 ms on one core); without it a decision is ~0.05 ms and no model is
loaded. `--param emb_scale=1` brings it back.

0/1 scores (answered correctly or not) get a logistic regression → P(correct); other scores a ridge
regression → expected score. Prediction is a matrix product: microseconds. scikit-learn is needed
to train only; the file holds plain weight arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import LearnedRouter, load_npz_arrays, register_kind
from .textfeatures import FORMAT_COLUMNS, OPTIONS


def imputes_format(F: np.ndarray) -> bool:
    """Whether every training prompt had answer options (MMLU: yes). Then, for a prompt without any,
    the option and line features are unknown rather than zero: `standardise` gives them the training
    mean (z = 0) instead of extrapolating a multiple-choice artefact 5+ sd out. Measured on the
    synthetic kinds: +0.01–0.03 APGR and thresholds calibrated on MMLU that still route a share of
    new-kind prompts to the strong model (docs/LEARNED_ROUTING.md)."""
    return bool(len(F)) and bool((F[:, OPTIONS] > 0).all())


def standardise(F: np.ndarray, mu: np.ndarray, sd: np.ndarray, impute: bool = False) -> np.ndarray:
    Z = (F - mu) / sd
    if impute:
        Z[np.ix_(F[:, OPTIONS] == 0, FORMAT_COLUMNS)] = 0.0
    return Z


def design(E: np.ndarray, F: np.ndarray, mu: np.ndarray, sd: np.ndarray, emb_scale: float,
           impute: bool = False) -> np.ndarray:
    return np.hstack([standardise(F, mu, sd, impute), E * emb_scale]).astype(np.float64)


def is_binary(Y: np.ndarray) -> bool:
    """0/1 scores (NaN = not scored is allowed)."""
    known = Y[~np.isnan(Y)]
    return bool(np.isin(known, (0.0, 1.0)).all())


def standardiser(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of training features; a feature constant in training gets sd 1 (and so weight 0)."""
    mu = F.mean(axis=0)
    sd = F.std(axis=0)
    sd[sd < 1e-9] = 1.0
    return mu.astype(np.float32), sd.astype(np.float32)


def fit_linear(Z: np.ndarray, Y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per model (column of Y), logistic regression (0/1 scores) or ridge (others) on Z, penalty 1/C.

    NaN scores (sparse data) are skipped: each model learns from the prompts it was scored on.
    Returns weights (d, m), biases (m,) and whether the scores were 0/1.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    binary = is_binary(Y)
    W = np.zeros((Z.shape[1], Y.shape[1]))
    b = np.zeros(Y.shape[1])
    for j in range(Y.shape[1]):
        rows = ~np.isnan(Y[:, j])
        y = Y[rows, j]
        if len(y) == 0:
            continue
        if binary and len(np.unique(y)) < 2:  # always right (or wrong) in training
            p = min(max(float(y.mean()), 1e-3), 1 - 1e-3)
            b[j] = np.log(p / (1 - p))
            continue
        if not binary and len(y) < 2:
            b[j] = float(y.mean())
            continue
        if binary:
            m = LogisticRegression(C=C, max_iter=5000).fit(Z[rows], y.astype(int))
        else:
            m = Ridge(alpha=1.0 / C).fit(Z[rows], y)
        W[:, j] = np.ravel(m.coef_)
        b[j] = float(np.ravel(m.intercept_)[0]) if np.ndim(m.intercept_) else float(m.intercept_)
    return W.astype(np.float32), b.astype(np.float32), binary


def link_fn(z: np.ndarray, link: str) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z)) if link == "logistic" else z


@register_kind
class ClassifierRouter(LearnedRouter):
    kind = "classifier"
    uses_features = True

    def __init__(self, models: Sequence[str], embedding: str, *, W: np.ndarray, b: np.ndarray, mu: np.ndarray,
                 sd: np.ndarray, emb_scale: float, link: str, impute: bool = False, **common: Any) -> None:
        super().__init__(models, embedding, **common)
        if W.ndim != 2 or W.shape != (len(mu) + self.dim, len(self.models)) or b.shape != (len(self.models),) \
                or mu.shape != sd.shape or link not in ("logistic", "identity"):
            raise ValueError("classifier arrays do not fit the header")
        self.W, self.b, self.mu, self.sd = W, b, mu, sd
        self.emb_scale, self.link, self.impute = float(emb_scale), link, bool(impute)
        self.uses_embedding = self.emb_scale != 0

    @classmethod
    def needs_embedding(cls, params: dict[str, Any]) -> bool:
        return float(params.get("emb_scale", 0.0)) != 0

    @classmethod
    def fit(cls, models: Sequence[str], embedding: str, E: np.ndarray, F: np.ndarray | None, Y: np.ndarray, *,
            C: float = 0.1, emb_scale: float = 0.0, **common: Any) -> ClassifierRouter:
        assert F is not None
        mu, sd = standardiser(F)
        W, b, binary = fit_linear(design(E, F, mu, sd, emb_scale), Y, C)
        return cls(models, embedding, W=W, b=b, mu=mu, sd=sd, emb_scale=emb_scale,
                   link="logistic" if binary else "identity", impute=imputes_format(F), **common)

    def _predict(self, E: np.ndarray, F: np.ndarray | None) -> np.ndarray:
        assert F is not None
        return link_fn(design(E, F, self.mu, self.sd, self.emb_scale, self.impute) @ self.W + self.b, self.link)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b, "mu": self.mu, "sd": self.sd}

    def _params(self) -> dict[str, Any]:
        return {"emb_scale": self.emb_scale, "link": self.link, "impute": self.impute}

    @classmethod
    def _from_file(cls, header: dict[str, Any], arrays: dict[str, np.ndarray],
                   common: dict[str, Any]) -> ClassifierRouter:
        W, b, mu, sd = load_npz_arrays(arrays, "W", "b", "mu", "sd")
        p = header.get("params") or {}
        return cls(common.pop("models"), common.pop("embedding"), W=W, b=b, mu=mu, sd=sd,
                   emb_scale=p["emb_scale"], link=p["link"], impute=bool(p.get("impute", False)), **common)
