"""Reports for a config's experiments, read from its request log: what `GET /admin/experiments` and
`modelyard experiment report --config` both return. Blocking (SQLite): call it in a thread on a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .assign import shares
from .data import read_experiment
from .report import build_report

if TYPE_CHECKING:
    from ..config import Config


class UnknownExperiment(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name, self.known = name, known

    def __str__(self) -> str:
        have = f"; configured: {', '.join(self.known)}" if self.known else "; the config has no experiments section"
        return f"no experiment '{self.name}'{have}"


def report(config: Config, log_path: str, name: str, *, since: float | None = None) -> dict[str, Any]:
    """One experiment's report (UnknownExperiment when the config does not have it)."""
    cfg = config.experiments.get(name)
    if cfg is None:
        raise UnknownExperiment(name, list(config.experiments))
    data = read_experiment(log_path, name, list(cfg.variants), since=since)
    return build_report(name, cfg, shares(cfg), data)


def reports(config: Config, log_path: str, *, since: float | None = None) -> list[dict[str, Any]]:
    """Every configured experiment's report, in config order."""
    return [report(config, log_path, name, since=since) for name in config.experiments]
