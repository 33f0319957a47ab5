"""What the router knows about a request: computed once per request by `analyze.analyze`, then read by
filters and strategies. A plain slotted dataclass because it is built on the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASKS: tuple[str, ...] = (
    "code_generation", "code_review", "math", "reasoning", "summarization", "translation",
    "extraction", "classification", "creative_writing", "simple_qa", "chat",
)


@dataclass(slots=True)
class Features:
    # (analyze.py builds it with the first nine fields positional: keep their order)
    task: str = "chat"  # one of TASKS
    task_confidence: float = 0.0  # the classifier's probability of `task`
    complexity: float = 0.0  # 0 = trivial, 1 = hardest
    input_tokens: int = 0  # prompt estimate (exact for OpenAI-family models when tiktoken is enabled)
    output_tokens: int = 0  # expected output: max_tokens, else a per-task prior
    context_tokens: int = 0  # input_tokens + max_tokens (or the expected output): what must fit
    capabilities: frozenset[str] = frozenset()  # needed: vision | tools | json
    language: str = "en"  # "en" or "other" — a cheap script/stopword guess
    user: str | None = None
    tier: str | None = None  # user tier: free | pro | enterprise | ...
    tags: frozenset[str] = frozenset()  # request tags: deployments must carry all of them
    task_value: str | None = None  # low | medium | high (or a number as text)
    latency_budget_ms: float | None = None
    max_cost_usd: float | None = None
    min_quality: float | None = None
    optimize_for: str | None = None  # cost | latency | quality | balanced
    team: str | None = None
    key: str | None = None
    hour: int = 0  # local hour of day (0-23), for time-of-day rules
    weekday: int = 0  # local day of week, 0 = Monday
    extra: dict[str, Any] = field(default_factory=dict)  # other metadata keys, for rules
    # False: the light analysis (tokens, capabilities, hints; no task, complexity or language), used
    # for groups whose strategy and filters do not read them (first-healthy, weighted, ...)
    analyzed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by explain, the request log and RouteDecision.features."""
        full = self.analyzed
        d: dict[str, Any] = {
            "task": self.task if full else None, "task_confidence": round(self.task_confidence, 3) if full else None,
            "complexity": round(self.complexity, 3) if full else None, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "context_tokens": self.context_tokens,
            "capabilities": sorted(self.capabilities), "language": self.language if full else None,
        }
        for k in ("user", "tier", "task_value", "latency_budget_ms", "max_cost_usd", "min_quality",
                  "optimize_for", "team"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.tags:
            d["tags"] = sorted(self.tags)
        return d
