"""The gateway side of learned routing: strategies `learned` (a trained router file) and `semantic`
(example utterances per route), registered with the routing engine's strategy registry.

    model_groups:
      auto:
        deployments: [sim/frontier, sim/fast]
        strategy: learned
        options:
          router_file: routers/mmlu-knn.npz
          strong_share: 0.3            # or threshold: 0.12, or min_predicted_quality, or cost_weight
          models: {sim/frontier: gpt-4-1106-preview, sim/fast: mixtral-8x7b-instruct-v0.1}

Everything heavy happens at config load: the router file is read and checked (a missing or corrupt
file is a config error naming `options.router_file`), deployments are mapped to the router's models,
`strong_share` is turned into a threshold on the predictions stored in the file, and the embedding
model is loaded. Per request: one embedding of the last user message (LRU-cached), a few µs of
arithmetic, and the decision rule of base.py over the candidates' expected costs.

Pre-routing step: the routing engine collects `prepare(req)` from every strategy whose traits say
`prepares` (`Router.prepares`) and the gateway runs it in a worker thread before planning. Only
routers that embed have slow per-request work, so the factory builds `EmbeddingLearnedStrategy`
(`prepares`: the embedding, into the cache) for them and plain `LearnedStrategy` (no step, no
thread hop) for the others and when `cache_size: 0` leaves nowhere to keep the result.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from ...types import ChatRequest, Scored
from ..features import Features
from ..strategies.base import (
    ConfigNames,
    Strategy,
    StrategyConfigError,
    StrategyContext,
    StrategyTraits,
    register_strategy,
)
from ..strategies.util import Options, parse_options

if TYPE_CHECKING:
    import numpy as np

    from ...deployment import Deployment
    from .base import LearnedRouter

_NEEDS = "learned routing needs numpy and the embedding model: pip install 'modelyard[learned]'"


class LearnedOptions(Options):
    router_file: str
    models: dict[str, str] = {}  # deployment → the router's model name (default: same name, or its model)
    threshold: float | None = None  # prefer a pricier model only if predicted better by ≥ this
    strong_share: float | None = Field(None, ge=0, le=1)  # calibrate the threshold to this share of strong calls
    min_predicted_quality: float | None = None  # instead: the cheapest model predicted to reach this
    cost_weight: float | None = Field(None, ge=0)  # instead: maximise quality − cost_weight · expected USD
    online: bool = True  # knn routers learn from POST /v1/feedback at once
    cache_size: int = Field(4096, ge=0)  # prompts whose embeddings are kept (repeated prompts skip the model)

    @model_validator(mode="after")
    def _one_rule(self) -> LearnedOptions:
        rules = [k for k in ("threshold", "strong_share", "min_predicted_quality", "cost_weight")
                 if getattr(self, k) is not None]
        if len(rules) > 1:
            raise ValueError(f"set one of threshold, strong_share, min_predicted_quality, cost_weight; got "
                             f"{', '.join(rules)}")
        return self


_loaded: dict[tuple[str, float, int], LearnedRouter] = {}
_loaded_lock = threading.Lock()


def _load(path: str) -> LearnedRouter:
    """Load (once per file version between validation and build) or raise StrategyConfigError."""
    try:
        from .base import RouterFileError, load_router
    except ImportError:
        raise StrategyConfigError("router_file", _NEEDS) from None
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime, st.st_size)
    except OSError:
        key = (str(p), 0.0, -1)
    with _loaded_lock:
        router = _loaded.pop(key, None)
    if router is not None:
        return router
    try:
        router = load_router(p)
    except RouterFileError as e:
        raise StrategyConfigError("router_file", str(e)) from None
    with _loaded_lock:
        _loaded.clear()  # keep at most one parsed file waiting between validate and build
        _loaded[key] = router
    return router


def _mapping(opts: LearnedOptions, router: LearnedRouter, deps: list[tuple[str, str]]) -> dict[str, int]:
    """deployment name → router model column; raises when the group cannot be mapped."""
    out = {dep: router.index[model] for dep, model in opts.models.items() if model in router.index}
    for dep, upstream in deps:
        if dep not in out:
            if dep in router.index:
                out[dep] = router.index[dep]
            elif upstream in router.index:
                out[dep] = router.index[upstream]
    if len(out) < 2:
        raise StrategyConfigError("models", f"map at least two of the group's deployments to the router's models "
                                  f"({', '.join(router.models)}) with options.models: {{deployment: model}}")
    return out


def _validate(options: dict[str, Any], names: ConfigNames) -> None:
    opts = parse_options(LearnedOptions, options)
    router = _load(opts.router_file)
    for dep, model in opts.models.items():  # the full mapping needs upstream model names: checked at build
        if dep not in names.group_deployments:
            raise StrategyConfigError(("models", dep), f"not a deployment of model group '{names.group}'")
        if model not in router.index:
            raise StrategyConfigError(("models", dep), f"the router predicts no model '{model}'; it knows: "
                                      f"{', '.join(router.models)}")
    if opts.strong_share is not None and (router.strong is None or router.calib is None):
        raise StrategyConfigError("strong_share", "this router file has no stored predictions to calibrate on: "
                                  "use threshold (from `modelyard calibrate`)")


_live: weakref.WeakSet[LearnedStrategy] = weakref.WeakSet()


def learned_strategy(options: dict[str, Any], ctx: StrategyContext) -> LearnedStrategy:
    """The `learned` factory: a router that embeds prompts (with the embedding cache on) gets the
    strategy with a pre-routing step (`EmbeddingLearnedStrategy.prepare`), any other the plain
    strategy — so the routing engine, which runs `prepare` in a worker thread for strategies that
    define it, adds no thread hop where there is nothing to compute ahead or nowhere to keep it."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise StrategyConfigError("router_file", _NEEDS) from None
    opts = parse_options(LearnedOptions, options)
    router = _load(opts.router_file)
    cls = EmbeddingLearnedStrategy if router.uses_embedding and opts.cache_size else LearnedStrategy
    return cls(opts, router, ctx)


class LearnedStrategy(Strategy):
    """Ranks the group's deployments by a trained router's predictions and the decision rule.
    Built by `learned_strategy` (the registered factory) from parsed options and a loaded router."""

    name = "learned"

    def __init__(self, opts: LearnedOptions, router: LearnedRouter, ctx: StrategyContext) -> None:
        import numpy as np

        from ...embed.backends import EmbeddingError
        from .calibrate import costs_vector, threshold_for_strong_share

        self.opts, self.router = opts, router
        group = ctx.groups.get(ctx.group, [])
        self.deployments = ctx.deployments
        self.col = _mapping(opts, router, [(d, ctx.deployments[d].model) for d in group if d in ctx.deployments])
        self.rule: dict[str, float] = {}
        if opts.cost_weight is not None:
            self.rule = {"lam": opts.cost_weight}
        elif opts.min_predicted_quality is not None:
            self.rule = {"min_quality": opts.min_predicted_quality}
        elif opts.strong_share is not None:
            if router.calib is None or router.strong is None:
                raise StrategyConfigError("strong_share", "this router file has no stored predictions to calibrate on")
            costs = costs_vector(router.models, router.costs, router.strong)
            try:
                t = threshold_for_strong_share(router.calib, costs, router.index[router.strong], opts.strong_share)
            except ValueError as e:
                raise StrategyConfigError("strong_share", str(e)) from None
            self.rule = {"threshold": t}
        else:
            self.rule = {"threshold": opts.threshold if opts.threshold is not None else (router.threshold or 0.0)}
        try:
            if router.uses_embedding:
                router.embedder()  # load the model now, not on the first request
        except EmbeddingError as e:
            raise StrategyConfigError("router_file", str(e)) from None
        self._np = np
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        _live.add(self)

    def describe_rule(self) -> str:
        (k, v), = self.rule.items()
        return {"lam": f"quality − {v:g}·USD", "min_quality": f"cheapest with predicted quality ≥ {v:g}",
                "threshold": f"cheapest unless a pricier model is predicted ≥ {v:.3f} better"}[k]

    # --- per request -----------------------------------------------------------------------------
    def embedding(self, prompt: str) -> np.ndarray:
        """The router's embedding of a prompt, through the LRU cache keyed by what the embedding reads
        (`LearnedRouter.embed_key`: its first words, not the whole prompt)."""
        key = self.router.embed_key(prompt)
        with self._lock:
            e = self._cache.get(key)
            if e is not None:
                self._cache.move_to_end(key)
                return e
        e = self.router.embed([key])
        if self.opts.cache_size and self.router.uses_embedding:
            with self._lock:
                self._cache[key] = e
                if len(self._cache) > self.opts.cache_size:
                    self._cache.popitem(last=False)
        return e

    def predict_prompt(self, prompt: str) -> np.ndarray:
        """Predicted quality of every router model for a prompt (one row)."""
        router = self.router
        E = self.embedding(prompt)
        F = router.features([prompt]) if router.uses_features else None
        return router.predict_arrays(E, F)[0]

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        if not candidates:
            return []
        from ..candidates import est_cost
        from .base import choose

        np = self._np
        mapped = [d for d in candidates if d.name in self.col]
        others = [d for d in candidates if d.name not in self.col]
        if not mapped:
            return [Scored(d.name, 0.0, True, "not mapped to a router model") for d in candidates]
        q_all = self.predict_prompt(prompt_of(req))
        q = np.array([q_all[self.col[d.name]] for d in mapped])
        costs = np.array([est_cost(d, features) for d in mapped])
        if not np.ptp(costs) and self.router.costs:  # no price difference known here: the data's costs
            costs = np.array([self.router.costs.get(self.router.models[self.col[d.name]], 0.0) for d in mapped])
        pick = choose(q, costs, **self.rule)
        rest = sorted((i for i in range(len(mapped)) if i != pick), key=lambda i: -q[i])
        order = [pick, *rest]
        n = len(candidates)
        out = [Scored(mapped[i].name, (n - pos) / n, True,
                      f"predicted quality {q[i]:.3f}, expected ${costs[i]:.6f}"
                      + (f"; chosen: {self.describe_rule()}" if pos == 0 else ""))
               for pos, i in enumerate(order)]
        out += [Scored(d.name, 0.0, True, "not mapped to a router model") for d in others]
        return out

    # --- feedback ----------------------------------------------------------------------------------
    def learn(self, prompt: str, deployment: str, score: float) -> bool:
        """Add one fed-back (prompt, deployment, score) to a knn router; False if this one cannot."""
        if not self.opts.online or self.router.kind != "knn" or deployment not in self.col:
            return False
        np = self._np
        y = np.full((1, len(self.router.models)), np.nan, dtype=np.float32)
        y[0, self.col[deployment]] = score
        router = self.router
        router.add_examples(self.embedding(prompt), router.features([prompt]) if router.uses_features else None, y)
        return True


class EmbeddingLearnedStrategy(LearnedStrategy):
    """The learned strategy for routers that embed the prompt (knn, mf): adds the pre-routing step."""

    traits = StrategyTraits(prepares=True)

    def prepare(self, req: ChatRequest) -> None:
        """Pre-routing step (routing engine: `Router.prepares`; the gateway awaits it in a worker
        thread before `plan`): embed the prompt into the LRU cache — onnxruntime releases the GIL —
        so `rank`, on the event loop, finds the embedding ready."""
        self.embedding(prompt_of(req))


def prompt_of(req: ChatRequest) -> str:
    """What a router reads: the last user message (what the training data's prompts are)."""
    for m in reversed(req.messages):
        if m.role == "user":
            text = m.text()
            if text:
                return text
    return req.prompt_text()


def learn_online(deployments: dict[str, Deployment], prompt: str, deployment: str, score: float) -> int:
    """Feed one scored answer to every live knn strategy of *this* gateway (matched by its Deployment
    objects); returns how many learned from it."""
    dep = deployments.get(deployment)
    n = 0
    for s in list(_live):
        if dep is not None and s.deployments.get(deployment) is dep and s.learn(prompt, deployment, score):
            n += 1
    return n


# --- semantic ---------------------------------------------------------------------------------------------
class SemanticOptions(Options):
    routes: dict[str, list[str]]  # deployment → example utterances
    threshold: float = Field(0.4, ge=-1, le=1)  # below this similarity nothing matches: `default` first
    default: str | None = None  # deployment for prompts like no route (default: group order)
    backend: str = "minilm-l6-v2-int8"


def _validate_semantic(options: dict[str, Any], names: ConfigNames) -> None:
    opts = parse_options(SemanticOptions, options)
    if not opts.routes:
        raise StrategyConfigError("routes", "give at least one route: {deployment: [example, ...]}")
    for dep, examples in opts.routes.items():
        if dep not in names.group_deployments:
            raise StrategyConfigError(("routes", dep), f"not a deployment of model group '{names.group}'")
        if not examples or not all(isinstance(e, str) and e.strip() for e in examples):
            raise StrategyConfigError(("routes", dep), "give a non-empty list of example prompts")
    if opts.default is not None and opts.default not in names.group_deployments:
        raise StrategyConfigError("default", f"not a deployment of model group '{names.group}'")
    from ...embed.backends import BACKENDS

    if opts.backend not in BACKENDS:
        raise StrategyConfigError("backend", f"unknown embedding backend; one of: {', '.join(BACKENDS)}")


class SemanticStrategy(Strategy):
    """Deployments ordered by similarity of the prompt to their example utterances."""

    name = "semantic"

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        _validate_semantic(options, ConfigNames(ctx.group, tuple(ctx.groups.get(ctx.group, ())),
                                                frozenset(ctx.deployments), {}))
        self.opts = opts = parse_options(SemanticOptions, options)
        try:
            from ...embed.backends import EmbeddingError
            from .semantic import SemanticRouter
        except ImportError:
            raise StrategyConfigError("routes", _NEEDS) from None
        try:
            self.router = SemanticRouter(opts.routes, backend=opts.backend)
        except EmbeddingError as e:
            raise StrategyConfigError("backend", str(e)) from None

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        if not candidates:
            return []
        sims = self.router.predict(prompt_of(req))
        best = max(sims.values()) if sims else -1.0
        default = self.opts.default if best < self.opts.threshold else None

        def key(i: int) -> tuple[int, float, int]:
            d = candidates[i]
            return (0 if d.name == default else 1, -sims.get(d.name, -1.0), i)

        order = sorted(range(len(candidates)), key=key)
        out = []
        for pos, i in enumerate(order):
            d = candidates[i]
            s = sims.get(d.name)
            why = f"similarity {s:.3f} to its examples" if s is not None else "no examples"
            if pos == 0 and default is not None:
                why = f"default: best similarity {best:.3f} < threshold {self.opts.threshold}"
            out.append(Scored(d.name, s if s is not None else -1.0, True, why))
        return out


register_strategy("learned", learned_strategy, validate=_validate)
register_strategy("semantic", SemanticStrategy, validate=_validate_semantic)
