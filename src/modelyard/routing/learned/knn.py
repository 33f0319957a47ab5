"""k-nearest-neighbour router: a prompt is as hard for each model as the most similar prompts seen.

Two parts. A *base*: per model, a regularised linear model on the standardised text features
(classifier.py's `fit_linear`), which extrapolates — a longer, more numeric, more multi-step
prompt than any seen still gets a more extreme prediction. And the *neighbours*: the k most similar
training prompts correct the base by their residuals (observed − base), weighted `exp((sim − 1)/τ)`
and shrunk towards no correction by `prior` pseudo-examples. The weights are absolute, not relative
to the best match, so a prompt unlike anything seen (another task kind) has few heavy neighbours and
keeps the base prediction, while a prompt from familiar ground gets its neighbourhood's correction.

Similarity mixes two cosines, `sim = (cos_E + w·cos_F) / (1 + w)` with w = `feat_weight`: of the
embeddings (what the prompt is about) and of the standardised text features (how it is asked).

Why not plain embedding neighbours (`base=0, feat_weight=0`, the kind's first version): they
memorise topics. A math word problem's nearest MMLU prompts are elementary-math questions of every
difficulty, so every prompt of a new kind gets about the same prediction (APGR ≈ 0.5 on the
synthetic kinds; docs/LEARNED_ROUTING.md has the figures for each variant).

One (n × 384) and one (n × 23) matrix product per prompt: ~0.3 ms at n = 4k. The only kind that
learns online: `add_examples` appends fed-back prompts, effective at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import LearnedRouter, load_npz_arrays, register_kind
from .classifier import fit_linear, imputes_format, link_fn, standardise, standardiser


@register_kind
class KnnRouter(LearnedRouter):
    kind = "knn"

    def __init__(self, models: Sequence[str], embedding: str, *, X: np.ndarray, Y: np.ndarray, k: int = 100,
                 tau: float = 0.1, prior: float = 0.5, feat_weight: float = 0.0, base: bool = False,
                 G: np.ndarray | None = None, mu: np.ndarray | None = None, sd: np.ndarray | None = None,
                 Wb: np.ndarray | None = None, bb: np.ndarray | None = None, B: np.ndarray | None = None,
                 link: str = "identity", impute: bool = False, **common: Any) -> None:
        super().__init__(models, embedding, **common)
        m = len(self.models)
        if X.ndim != 2 or X.shape[1] != self.dim or Y.ndim != 2 or len(X) != len(Y) or Y.shape[1] != m:
            raise ValueError(f"knn arrays do not fit: X {X.shape}, Y {Y.shape}, {m} models")
        self.feat_weight, self.base = float(feat_weight), bool(base)
        self.uses_features = self.feat_weight > 0 or self.base
        if self.uses_features:
            if mu is None or sd is None or mu.shape != sd.shape or mu.ndim != 1:
                raise ValueError("knn feature scaling arrays missing")
            if self.feat_weight > 0 and (G is None or G.shape != (len(X), len(mu))):
                raise ValueError("knn feature arrays do not fit")
            if self.base and (Wb is None or bb is None or B is None or Wb.shape != (len(mu), m)
                              or bb.shape != (m,) or B.shape != Y.shape or link not in ("logistic", "identity")):
                raise ValueError("knn base-model arrays do not fit")
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.Y = np.asarray(Y, dtype=np.float32)
        self.G = None if G is None else np.ascontiguousarray(G, dtype=np.float32)  # unit-length feature rows
        self.B = None if B is None else np.asarray(B, dtype=np.float32)  # base predictions on the stored prompts
        self.mu, self.sd, self.Wb, self.bb, self.link, self.impute = mu, sd, Wb, bb, link, bool(impute)
        self.k, self.tau, self.prior = int(k), float(tau), float(prior)
        self._lock = threading.Lock()

    @classmethod
    def fit(cls, models: Sequence[str], embedding: str, E: np.ndarray, F: np.ndarray | None, Y: np.ndarray, *,
            k: int = 100, tau: float = 0.1, prior: float = 0.5, feat_weight: float = 0.5, base: float = 1.0,
            C: float = 0.1, **common: Any) -> KnnRouter:
        use_base = bool(base) and F is not None
        if F is None or (feat_weight <= 0 and not use_base):
            return cls(models, embedding, X=E, Y=Y, k=k, tau=tau, prior=prior, **common)
        mu, sd = standardiser(F)
        Z = standardise(F, mu, sd)
        Wb = bb = B = None
        link = "identity"
        if use_base:
            Wb, bb, binary = fit_linear(Z, np.asarray(Y, dtype=np.float64), C)
            link = "logistic" if binary else "identity"
            B = link_fn(Z @ Wb + bb, link)
        router = cls(models, embedding, X=E, Y=Y, k=k, tau=tau, prior=prior, feat_weight=feat_weight,
                     base=use_base, mu=mu, sd=sd, Wb=Wb, bb=bb, B=B, link=link, impute=imputes_format(F),
                     G=np.zeros((len(E), len(mu)), dtype=np.float32), **common)
        if feat_weight > 0:
            router.G = router._unit_features(F)
        else:
            router.G = None
        return router

    def _unit_features(self, F: np.ndarray) -> np.ndarray:
        assert self.mu is not None and self.sd is not None
        Z = standardise(np.asarray(F, dtype=np.float32), self.mu, self.sd, self.impute)
        Z[:, self.sd == 1.0] = 0.0  # constant in training (e.g. MMLU's option count): no say in similarity
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-6)

    def _base(self, F: np.ndarray) -> np.ndarray:
        assert self.mu is not None and self.sd is not None and self.Wb is not None and self.bb is not None
        return link_fn(standardise(np.asarray(F, dtype=np.float32), self.mu, self.sd, self.impute) @ self.Wb + self.bb,
                       self.link)

    def _predict(self, E: np.ndarray, F: np.ndarray | None) -> np.ndarray:
        if not self.uses_features:
            return self._neighbours(E, None, None, None)
        assert F is not None
        return self._neighbours(E, self._unit_features(F) if self.feat_weight > 0 else None,
                                self._base(F) if self.base else None, None)

    def in_sample(self) -> np.ndarray:
        """Leave-one-out predictions on the stored prompts (honest calibration data)."""
        G, B = self.G, self.B
        step = 1024
        return np.vstack([self._neighbours(self.X[i:i + step], None if G is None else G[i:i + step],
                                           None if B is None else B[i:i + step], i)
                          for i in range(0, len(self.X), step)])

    def _neighbours(self, E: np.ndarray, Gq: np.ndarray | None, Bq: np.ndarray | None,
                    offset: int | None) -> np.ndarray:
        X, Y, G, B = self.X, self.Y, self.G, self.B  # one consistent snapshot even while add_examples runs
        known = ~np.isnan(Y)  # fed-back rows score only the model that answered
        S: np.ndarray = E @ X.T
        if Gq is not None and G is not None:
            S = (S + self.feat_weight * (Gq @ G.T)) / (1.0 + self.feat_weight)
        if offset is not None:  # leave each stored prompt out of its own neighbourhood
            S[np.arange(len(E)), offset + np.arange(len(E))] = -np.inf
        if Bq is not None and B is not None:  # neighbours correct the base model by their residuals
            T, centre, anchor = Y - B, np.zeros(Y.shape[1], dtype=np.float32), 1.0
        else:  # plain knn: neighbours' scores, shrunk to the global mean
            T = Y
            centre = np.nanmean(Y, axis=0) if not known.all() else Y.mean(axis=0)
            anchor = None
        k = min(self.k, len(X) - (offset is not None))
        if k <= 0:
            out = np.repeat(centre[None, :], len(E), axis=0)
        else:
            idx = np.argpartition(-S, k - 1, axis=1)[:, :k]
            sims = np.take_along_axis(S, idx, axis=1)
            top = anchor if anchor is not None else sims.max(axis=1, keepdims=True)
            w = np.exp((sims - top) / self.tau)
            if known.all():
                num = np.einsum("nk,nkm->nm", w, T[idx])
                den = w.sum(axis=1, keepdims=True)
            else:
                num = np.einsum("nk,nkm->nm", w, np.nan_to_num(T[idx]))
                den = np.einsum("nk,nkm->nm", w, known[idx].astype(np.float32))
            out = (num + self.prior * centre[None, :]) / (den + self.prior)
        return out + Bq if Bq is not None else out

    def add_examples(self, E: np.ndarray, F: np.ndarray | None, Y: np.ndarray) -> None:
        """Learn from new scored prompts without retraining (copy-on-write: readers never block)."""
        E = np.asarray(E, dtype=np.float32).reshape(-1, self.X.shape[1])
        Y = np.asarray(Y, dtype=np.float32).reshape(-1, len(self.models))
        if self.uses_features and F is None:
            raise ValueError("this knn router uses text features: pass them with the embeddings")
        with self._lock:
            if self.G is not None and F is not None:
                self.G = np.vstack([self.G, self._unit_features(np.asarray(F).reshape(len(E), -1))])
            if self.B is not None and F is not None:
                self.B = np.vstack([self.B, self._base(np.asarray(F).reshape(len(E), -1))])
            self.X, self.Y = np.vstack([self.X, E]), np.vstack([self.Y, Y])

    def _arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"X": self.X.astype(np.float16), "Y": self.Y}
        if self.mu is not None and self.sd is not None:
            out |= {"mu": self.mu, "sd": self.sd}
        if self.G is not None:
            out["G"] = self.G.astype(np.float16)
        if self.B is not None and self.Wb is not None and self.bb is not None:
            out |= {"B": self.B, "Wb": self.Wb, "bb": self.bb}
        return out

    def _params(self) -> dict[str, Any]:
        return {"k": self.k, "tau": self.tau, "prior": self.prior, "feat_weight": self.feat_weight,
                "base": self.base, "link": self.link, "impute": self.impute}

    @classmethod
    def _from_file(cls, header: dict[str, Any], arrays: dict[str, np.ndarray], common: dict[str, Any]) -> KnnRouter:
        X, Y = load_npz_arrays(arrays, "X", "Y")
        p = header.get("params") or {}
        fw, base = float(p.get("feat_weight", 0.0)), bool(p.get("base", False))
        mu, sd = load_npz_arrays(arrays, "mu", "sd") if fw > 0 or base else (None, None)
        G = load_npz_arrays(arrays, "G")[0].astype(np.float32) if fw > 0 else None
        B, Wb, bb = load_npz_arrays(arrays, "B", "Wb", "bb") if base else (None, None, None)
        return cls(common.pop("models"), common.pop("embedding"), X=X.astype(np.float32), Y=Y,
                   k=p.get("k", 100), tau=p.get("tau", 0.1), prior=p.get("prior", 2.0), feat_weight=fw, base=base,
                   G=G, mu=mu, sd=sd, Wb=Wb, bb=bb, B=B, link=p.get("link", "identity"),
                   impute=bool(p.get("impute", False)), **common)
