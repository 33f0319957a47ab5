"""The loader: cross-checks over the shapes, every problem reported at once, something to serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import modelyard
from modelyard.config import Config, parse_shapes
from modelyard.errors import ConfigError
from modelyard.loader import check_config, load_config, parse_config

MANY = """
server: {port: 99999}
deployments:
  a: {provider: sim, model: sim/fast, colour: red}
  b: {provider: sim, model: sim/frontier, api_base: "${NOT_SET_ANYWHERE}"}
model_groups:
  g: {deployments: [a, zz]}
  h: {deployments: [a], fallbacks: [nope]}
"""


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(MANY)
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    lines = str(e.value).splitlines()
    assert lines == [f"{p}: {field}: {msg}" for field, msg in e.value.problems]
    fields = [field for field, _ in e.value.problems]
    assert fields == ["deployments.b.api_base", "server.port", "deployments.a.colour"]  # shapes first
    assert "more problem" not in str(e.value)
    # with the shapes right, every cross-reference problem comes together
    p.write_text(MANY.replace("port: 99999", "port: 4000").replace(", colour: red", "")
                 .replace('api_base: "${NOT_SET_ANYWHERE}"', "weight: 1"))
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert [f for f, _ in e.value.problems] == ["model_groups.g.deployments[1]", "model_groups.h.fallbacks[0]"]


def test_strategy_and_pipeline_problems_come_together() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"deployments": {"a": {"provider": "sim", "model": "sim/fast"}},
                      "model_groups": {"g": {"deployments": ["a"], "strategy": "magic"},
                                       "k": {"deployments": ["a"], "strategy": "score", "options": {"wat": 1}}},
                      "pipelines": {"p": {"steps": [{"model": "missing", "prompt": "{{ input }}"}]}}}, "x.yaml")
    fields = [f for f, _ in e.value.problems]
    assert fields[0] == "model_groups.g.strategy" and fields[1].startswith("model_groups.k.options")
    assert fields[2].startswith("pipelines.p.steps[0]")


def test_an_empty_config_refuses_to_start_and_says_what_to_add(tmp_path: Path) -> None:
    for text in ("", "server: {port: 4001}\n", "deployments: {}\n"):
        p = tmp_path / "empty.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(p)
        assert e.value.path == "deployments" and "no deployments: add at least one" in e.value.message
        assert "provider: openai" in e.value.message
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(p), "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no deployments" in r.stderr and "serving" not in r.stdout
    assert "Traceback" not in r.stderr


def test_a_config_built_in_code_is_checked_by_the_client() -> None:
    shapes = parse_shapes({"deployments": {"a": {"provider": "sim", "model": "sim/fast"}},
                           "model_groups": {"g": {"deployments": ["b"]}}})
    with pytest.raises(ConfigError, match="unknown deployment 'b'"):
        check_config(shapes)
    with pytest.raises(ConfigError, match="no deployments"):
        modelyard.Client(Config())


def test_config_module_imports_no_subsystem() -> None:
    code = ("import sys, modelyard.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('modelyard.routing', 'modelyard.execution', "
            "'modelyard.gateway', 'modelyard.providers', 'modelyard.server'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
