"""Active health checks: a background task that sends a tiny request to each deployment marked
`health_check: true`, every `interval_s`. Outcomes feed health and the breaker like real calls, and
checks take the breaker's probe slot when the circuit is half-open, so a recovered deployment is
readmitted by a check rather than by a user's request. Off unless a deployment asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ..errors import ModelyardError, Timeout
from ..types import ChatRequest, Message
from .breaker import REFUSED
from .settings import HealthCheckSettings

if TYPE_CHECKING:
    from ..deployment import Deployment
    from .health import HealthTracker

log = logging.getLogger("modelyard.health")


class HealthChecks:
    def __init__(self, deployments: list[Deployment], health: HealthTracker,
                 settings: HealthCheckSettings) -> None:
        self.deployments = deployments
        self.health = health
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.deployments and self._task is None:
            self._task = asyncio.create_task(self._run(), name="modelyard-health-checks")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self.check(d) for d in self.deployments))
            await asyncio.sleep(self.settings.interval_s)

    async def check(self, dep: Deployment) -> bool | None:
        """Probe one deployment; True/False for its verdict, None if its breaker refused a probe."""
        breaker = self.health.breaker
        token = breaker.acquire(dep.name, time.monotonic())
        if token == REFUSED:
            return None
        req = ChatRequest(model=dep.name, messages=[Message("user", self.settings.prompt)], max_tokens=1)
        self.health.started(dep.name)
        try:
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    await dep.adapter.complete(req, dep)
            except TimeoutError:
                raise Timeout(f"deployment '{dep.name}' did not answer its health check within "
                              f"{self.settings.timeout_s:g} s", deployment=dep.name) from None
        except ModelyardError as e:
            self.health.failed(dep.name, e)
            log.info("health check of %s failed: %s", dep.name, e.message)
            return False
        except Exception:  # a bug in an adapter must not kill the checker
            log.exception("health check of %s crashed", dep.name)
            self.health.failed(dep.name)
            return False
        finally:
            self.health.finished(dep.name)
            breaker.release(dep.name, token)
        self.health.ok(dep.name)  # no latency: a one-token answer would flatter the deployment's EWMA
        return True
