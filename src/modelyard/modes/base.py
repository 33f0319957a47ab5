"""The declared interface every multi-model mode implements (dispatch.py holds the registry).

A mode receives the parent request as a `Run` — the request (`run.req`), whether the caller wants a
stream (`run.stream`), and the only way to make sub-calls: `run.call` (complete) and `run.open`
(streamed), both through the gateway's single-request path, so routing, fallbacks, accounting and
the request log apply to each — plus the parsed `Spec` and the candidates to ask. It returns a
`Result`: the call whose answer is served and a `describe()` for `response.modelyard`. Completed,
`Result.response` is the answer; streamed, either `Result.response` (replayed as a short stream) or
`Result.live` (the final call's open stream, passed through chunk for chunk).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from .run import Candidate, Result, Run, candidates
from .spec import Spec

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ..types import ChatRequest


class Mode(ABC):
    """One multi-model mode. Instances are stateless and shared by every request."""

    name: ClassVar[str]  # the `modelyard.mode` value (or "pipeline" for `pipeline/<name>` models)
    min_candidates: ClassVar[int] = 1  # fewer candidates is the caller's mistake (a 400)

    def candidates(self, gw: Gateway, req: ChatRequest, spec: Spec) -> list[Candidate]:
        """The models to ask, checked before any sub-call: `spec.models`, else the group's deployments."""
        return candidates(gw, req, spec, minimum=self.min_candidates)

    def calls(self, spec: Spec, n_candidates: int) -> int:
        """The most upstream sub-calls one request makes (checked against `resilience.caps.max_calls`)."""
        return n_candidates

    @abstractmethod
    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        """Make the sub-calls through `ctx` and decide what is served; raise a ModelyardError when the
        mode cannot answer (e.g. every candidate failed)."""
