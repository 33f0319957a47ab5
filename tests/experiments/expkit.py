"""Shared bits of the experiment tests: a sim-fleet config with one experiment on `smart`."""

from __future__ import annotations

import copy
from typing import Any

from modelyard.config import Config
from modelyard.defaults import default_config_data
from modelyard.loader import parse_config


def config_data(experiment: dict[str, Any] | None = None, log_path: str = ":memory:", **more: Any) -> dict[str, Any]:
    """The embedded sim fleet (`smart` = sim/frontier then sim/balanced, first-healthy) plus experiments."""
    data = default_config_data(sim_only=True)
    data["server"] = {"request_log": {"path": log_path}}
    exp = {"group": "smart", "unit": "user", "metric": "cost",
           "variants": {"control": {}, "treatment": {"deployments": ["sim/fast"]}}, "split": {"treatment": 50}}
    if experiment:
        exp.update(copy.deepcopy(experiment))
    data["experiments"] = {"cheaper": exp, **more}
    return data


def config(experiment: dict[str, Any] | None = None, **more: Any) -> Config:
    return parse_config(config_data(experiment, **more), "exp.yaml")
