"""What `modelyard serve` builds at start-up: the task classifier only when a group's routing reads
it, and not the simulated fleet for a config that does not use it (each costs start-up time). Run in
a fresh interpreter, so nothing an earlier test loaded is counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import asyncio, sys
from modelyard.gateway import Gateway
from modelyard.routing import classify
from modelyard.types import ChatRequest, Message

gw = Gateway.from_file(sys.argv[1])
loaded_at_start = classify.default_model.cache_info().currsize
chain, decision = gw.plan(gw.resolve("g"), ChatRequest(model="g", messages=[Message("user", "hi")]))
print(loaded_at_start, classify.default_model.cache_info().currsize, decision.deployment,
      "modelyard.providers.sim" in sys.modules)
"""


def probe(tmp_path: Path, strategy: str) -> list[str]:
    cfg = tmp_path / f"{strategy}.yaml"
    cfg.write_text(f"server:\n  request_log: {{path: {tmp_path / 'log.db'}}}\n"
                   "deployments:\n  up: {provider: openai, model: gpt-4o-mini, api_base: 'http://127.0.0.1:9/v1',"
                   " api_key: env:STARTUP_TEST_KEY}\n"
                   f"model_groups:\n  g: {{deployments: [up], strategy: {strategy}}}\n")
    out = subprocess.run([sys.executable, "-c", PROBE, str(cfg)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "STARTUP_TEST_KEY": "sk-test-0123456789abcdef"})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_group_that_reads_no_task_never_loads_the_classifier(tmp_path: Path) -> None:
    # loaded at start, loaded after a routed request, the pick, the sim fleet imported
    assert probe(tmp_path, "first-healthy") == ["0", "0", "up", "False"]


def test_a_group_that_reads_the_task_loads_it_at_start(tmp_path: Path) -> None:
    assert probe(tmp_path, "score") == ["1", "1", "up", "False"]
