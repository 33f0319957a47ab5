"""The top-level `state:` setting: where replicas share limits, budgets, breakers and caches.

Two spellings: a plain string (`memory`, `redis://host:6379/0`, `rediss://…`) or a mapping
`{url: …, on_failure: {limits: fail_open, budgets: fail_closed, breakers: …, cache: …}}` saying,
per concern, what a replica does while Redis cannot be reached: `fail_open` keeps serving on a
local in-process fallback (reported on /ready, in metrics and the log), `fail_closed` refuses the
requests that need that concern with 503 until Redis answers again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Policy = Literal["fail_open", "fail_closed"]
CONCERNS: tuple[str, ...] = ("limits", "budgets", "breakers", "cache")


class OnFailure(BaseModel):
    """What each concern does while the shared state is unreachable."""

    model_config = ConfigDict(extra="forbid")

    limits: Policy = "fail_open"  # local per-replica windows: N replicas may let N × rpm through
    budgets: Policy = "fail_closed"  # money: refuse rather than let N replicas each spend the rest
    breakers: Policy = "fail_open"  # each replica's own breakers
    cache: Policy = "fail_open"  # a miss (nothing stored) while Redis is away


class StateSettings(BaseModel):
    """`state:` — `memory` (one process) or a Redis URL shared by every replica."""

    model_config = ConfigDict(extra="forbid")

    url: str = "memory"  # memory | redis://host:port/db | rediss://…
    on_failure: OnFailure = OnFailure()
    timeout_s: float = Field(1.0, gt=0, le=30)  # one Redis command; past it Redis counts as down

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v != "memory" and not v.startswith(("redis://", "rediss://")):
            raise ValueError("must be 'memory' or a Redis URL (redis://host:6379/0, rediss://…)")
        return v

    @property
    def shared(self) -> bool:
        return self.url != "memory"
