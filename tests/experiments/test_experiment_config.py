"""Experiment config errors name the file and the field, every problem at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from expkit import config_data

from modelyard.errors import ConfigError
from modelyard.loader import load_config


def problems(tmp_path: Path, experiment: dict[str, Any], **more: Any) -> list[str]:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config_data(experiment, **more), sort_keys=False))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return str(e.value).replace(str(path), "exp.yaml").splitlines()


def test_a_valid_experiment_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(config_data({"variants": {"control": {}, "treatment": {
        "deployments": ["sim/fast", "sim/local"], "strategy": "cheapest"}}, "metric": "judge",
        "judge": {"model": "sim/balanced", "sample_pct": 5}})))
    cfg = load_config(path)
    assert cfg.experiments["cheaper"].judge.sample_pct == 5  # type: ignore[union-attr]


def test_unknown_group_and_deployment(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"group": "smrt",
                                "variants": {"control": {}, "treatment": {"deployments": ["sim/fats"]}}})
    assert "exp.yaml: experiments.cheaper.group: unknown model group 'smrt' (did you mean 'smart'?)" in lines
    assert ("exp.yaml: experiments.cheaper.variants.treatment.deployments[0]: unknown deployment 'sim/fats' "
            "(did you mean 'sim/fast'") in "\n".join(lines)


def test_a_deployment_is_not_a_group(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"group": "sim/fast"})
    assert lines == ["exp.yaml: experiments.cheaper.group: unknown model group 'sim/fast' (experiments split a model "
                     "group, not a deployment)"]


def test_strategy_and_options(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"variants": {"control": {}, "treatment": {"strategy": "cheapst"}}})
    assert lines[0].startswith("exp.yaml: experiments.cheaper.variants.treatment.strategy: unknown strategy 'cheapst'")
    lines = problems(tmp_path, {"variants": {"control": {}, "treatment": {"strategy": "score",
                                                                          "options": {"weights": {"nope": 1}}}}})
    assert len(lines) == 1 and lines[0].startswith("exp.yaml: experiments.cheaper.variants.treatment.options.weights")


def test_split(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"variants": {"control": {}, "a": {"deployments": ["sim/fast"]},
                                             "b": {"deployments": ["sim/local"]}},
                                "split": {"a": 60, "b": 50, "c": 1}})
    assert "exp.yaml: experiments.cheaper.split.c: unknown variant 'c'; variants: control, a, b" in lines
    assert "exp.yaml: experiments.cheaper.split: shares add up to 111%; at most 100" in lines
    lines = problems(tmp_path, {"variants": {"control": {}, "a": {"deployments": ["sim/fast"]},
                                             "b": {"deployments": ["sim/local"]}}, "split": {"a": 10}})
    assert lines == ["exp.yaml: experiments.cheaper.split: variant 'b' has no share: give it a percentage (control "
                     "gets what the others leave)"]
    lines = problems(tmp_path, {"split": {"treatment": -5}})
    assert lines == ["exp.yaml: experiments.cheaper.split.treatment: must be a percentage from 0 to 100, got -5"]


def test_control_judge_log_and_names(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"variants": {"base": {}, "treatment": {}}, "split": {}, "metric": "judge"})
    assert lines == [
        "exp.yaml: experiments.cheaper.variants: needs a 'control' variant: the baseline the others are compared "
        "with ('control: {}' is the group as configured)",
        "exp.yaml: experiments.cheaper.judge: metric 'judge' needs judge scoring: judge: {model: <group or "
        "deployment>, sample_pct: 10}"]
    lines = problems(tmp_path, {"judge": {"model": "nope"}}, **{"bad name!": {"group": "fast", "variants": {
        "control": {}, "x": {}}}})
    assert "exp.yaml: experiments.cheaper.judge.model: unknown group or deployment 'nope'" in lines
    assert any(line.startswith("exp.yaml: experiments.bad name!: experiment names are letters") for line in lines)
    data = config_data()
    data["server"]["request_log"] = {"enabled": False}
    path = tmp_path / "nolog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"nolog.yaml: experiments.cheaper: experiments are measured from the "
                                          r"request log, which is disabled"):
        load_config(path)


def test_one_enabled_experiment_per_group(tmp_path: Path) -> None:
    other = {"group": "smart", "variants": {"control": {}, "t": {"deployments": ["sim/local"]}}}
    lines = problems(tmp_path, {}, second=other)
    assert lines == ["exp.yaml: experiments.second.group: group 'smart' is already split by experiment 'cheaper'; one "
                     "enabled experiment per group (set enabled: false on the other)"]
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(config_data({}, second={**other, "enabled": False}), sort_keys=False))
    assert set(load_config(path).experiments) == {"cheaper", "second"}


def test_shape_errors(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"unit": "team", "variants": {"control": {}}, "colour": 1})
    text = "\n".join(lines)
    assert "exp.yaml: experiments.cheaper.unit:" in text and "'team'" in text
    assert "exp.yaml: experiments.cheaper.variants:" in text
    assert "exp.yaml: experiments.cheaper.colour: unknown field 'colour'" in text
