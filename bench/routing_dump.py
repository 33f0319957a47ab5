"""Dump the routing decisions of the routing benchmark's groups, to check that a change to the
request path leaves them alone: run it before and after, then compare the files.

    PYTHONPATH=src .venv/bin/python bench/routing_dump.py > /tmp/before.jsonl
    ... change ...
    PYTHONPATH=src .venv/bin/python bench/routing_dump.py > /tmp/after.jsonl
    PYTHONPATH=src .venv/bin/python bench/routing_dump.py --compare /tmp/before.jsonl /tmp/after.jsonl

One line per decision: the case, the prompt, the chain (deployment names, best first), the chosen
deployment, reason and rule, and each candidate's score by position (`repr`, every bit). `--compare`
says how many chains or choices differ (must be none) and how many scores differ in any bit.
Requests: the 450 labelled prompts, each plain, with an image, with `max_tokens: 50` and with each
`optimize_for` hint, through the `rules` and `score` groups of bench/routing_bench.py, with every
deployment eligible, with one breaker open, and (score) with observed latencies.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from routing_bench import config, prompts, with_image  # noqa: E402

from modelyard.gateway import Gateway  # noqa: E402
from modelyard.loader import parse_config  # noqa: E402
from modelyard.types import ChatRequest  # noqa: E402


def variants(reqs: list[ChatRequest]) -> list[tuple[str, ChatRequest]]:
    out: list[tuple[str, ChatRequest]] = [("plain", r) for r in reqs]
    out += [("image", r) for r in with_image(reqs)]
    out += [("max_tokens=50", ChatRequest(model="", messages=r.messages, max_tokens=50)) for r in reqs]
    for opt in ("cost", "latency", "quality"):
        out += [(f"optimize_for={opt}", ChatRequest(model="", messages=r.messages, metadata={"optimize_for": opt}))
                for r in reqs]
    return out


def dump() -> None:
    reqs = variants(prompts())
    for strategy in ("rules", "score"):
        gw = Gateway(parse_config(config(False), "bench.yaml"), source="bench.yaml", request_log=False)
        route = gw.resolve(strategy)
        cases = ["all eligible", "breaker open", "observed latencies"]
        for case in cases:
            if case == "breaker open":
                for _ in range(5):
                    gw.health.failed("d03")
            if case == "observed latencies":
                gw.health.breaker.record("d03").state = "closed"
                gw.health.breaker.not_closed.discard("d03")
                rnd = random.Random(1)
                for d in gw.router.plans[strategy].deployments:
                    gw.health.ok(d.name, latency_ms=rnd.uniform(500, 5000), ttft_ms=rnd.uniform(100, 2000))
            for i, (kind, r) in enumerate(reqs):
                chain, decision = gw.router.plan(route, r)
                row: dict[str, Any] = {
                    "strategy": strategy, "case": case, "kind": kind, "prompt": i % 450,
                    "chain": [d.name for d in chain], "chosen": decision.deployment,
                    "reason": decision.reason, "rule": decision.rule,
                    "scores": {s.deployment: repr(s.score) for s in decision.candidates},
                }
                print(json.dumps(row))


def compare(a: str, b: str) -> int:
    rows_a = Path(a).read_text().splitlines()
    rows_b = Path(b).read_text().splitlines()
    if len(rows_a) != len(rows_b):
        print(f"different row counts: {len(rows_a)} vs {len(rows_b)}")
        return 1
    chains = scores = 0
    for x, y in zip(map(json.loads, rows_a), map(json.loads, rows_b), strict=True):
        if (x["chain"], x["chosen"], x["reason"], x["rule"]) != (y["chain"], y["chosen"], y["reason"], y["rule"]):
            chains += 1
        if x["scores"] != y["scores"]:
            scores += 1
    print(f"{len(rows_a)} decisions: {chains} chains/choices/reasons differ, {scores} with some score differing")
    return 1 if chains else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    dump()


if __name__ == "__main__":
    main()
