"""One-line errors instead of tracebacks: a missing extra, a config with several problems."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# the CLI run with numpy absent, as after `make demo` (no learned extra): sys.modules[name] = None is how
# Python marks a module as not importable, for `import` and importlib.util.find_spec alike
WITHOUT_NUMPY = ("import sys; sys.modules['numpy'] = None; from modelyard.cli import main; "
                 "sys.argv[0] = 'modelyard'; main()")


@pytest.mark.parametrize("args", [
    ["train", "-o", "r.npz", "--data", "d.jsonl", "--strong", "a", "--weak", "b"],
    ["eval", "--data", "d.jsonl", "--router", "r.npz", "--strong", "a", "--weak", "b"],
    ["calibrate", "--router", "r.npz", "--strong-share", "0.3"],
    ["replay", "--log", "x.db", "--router", "r.npz"],
])
def test_learned_commands_without_the_extra_name_it_in_one_line(tmp_path: Path, args: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", WITHOUT_NUMPY, *args], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: modelyard {args[0]} needs the learned-routing extra (numpy is not installed): "
        "pip install 'modelyard[learned]'"]


def test_config_errors_print_every_problem_one_line_each(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("deployments:\n  a: {provider: sim, model: sim/fast, weight: -1}\n"
                 "model_groups:\n  g: {deployments: [a], colour: red}\n")
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "models", "--config", str(p)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"error: {p} has 2 problems:"
    assert lines[1].startswith(f"  {p}: deployments.a.weight: ")
    assert lines[2] == f"  {p}: model_groups.g.colour: unknown field 'colour'"
