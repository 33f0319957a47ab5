"""Load under failure: 3 deployments on the fault-injecting upstream (tests/faults/), 2 of them
answering 503 half the time, driven through the real gateway server on loopback.

    .venv/bin/python bench/faults_load.py                 # 5000 requests, 20 concurrent
    .venv/bin/python bench/faults_load.py --n 20000 --concurrency 100 --fail-rate 0.7

Prints a markdown table (docs/RELIABILITY.md keeps the last one): success rate, upstream calls per
request, latency percentiles, for the retry policy alone, with circuit breakers, and (to show the
attempt bound) with the third deployment failing as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "faults")]
os.environ.setdefault("MODELYARD_NO_OLLAMA", "1")

from fault_upstream import FaultUpstream, flaky  # noqa: E402
from faultkit import config, run_load  # noqa: E402

from conftest import make_server  # noqa: E402


def scenario(breaker: bool, n: int, concurrency: int, fail_rate: float, deadline: float, max_attempts: int,
             stream_every: int, all_flaky: bool = False) -> list[str]:
    with FaultUpstream(seed=11) as up, tempfile.TemporaryDirectory() as tmp:
        for name in ("a", "b", "c") if all_flaky else ("a", "b"):
            up.script(name, then=flaky(fail_rate))
        res = {"timeout_s": deadline, "retry": {"max_attempts": max_attempts},
               "breaker": {"enabled": breaker, "cooldown_s": 1.0}}
        cfg = config(up, {"a": "openai", "b": "openai", "c": "anthropic"}, {"g": {"deployments": ["a", "b", "c"]}},
                     resilience=res)
        cfg["resilience"]["breaker"] = res["breaker"]  # the defaults, not the tests' "stay out of the way"
        with make_server(Path(tmp), cfg) as s:
            r = run_load(s.url, n=n, concurrency=concurrency, stream_every=stream_every)
        calls = sum(up.hits.values())
    dist = ", ".join(f"{k}: {v}" for k, v in sorted(r.attempts.items()))
    mode = ("breakers on" if breaker else "retries only") + (", c failing too" if all_flaky else "")
    return [mode, str(r.n), f"{100 * r.success_rate:.2f} %",
            f"{r.total_attempts / r.n:.2f}", dist, f"{calls}", f"{1000 * r.pct(0.5):.1f}", f"{1000 * r.pct(0.99):.1f}",
            f"{1000 * r.latencies[-1]:.1f}", f"{r.n / r.wall_s:.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--fail-rate", type=float, default=0.5)
    ap.add_argument("--deadline", type=float, default=5.0)
    ap.add_argument("--max-attempts", type=int, default=3)
    ap.add_argument("--stream-every", type=int, default=4, help="every k-th request is streamed (0: none)")
    a = ap.parse_args()
    head = ["mode", "requests", "succeeded", "calls/request", "attempts per request (k: requests)", "upstream calls",
            "p50 ms", "p99 ms", "max ms", "req/s"]
    print(f"deployments a, b fail {100 * a.fail_rate:g} % (503), c healthy; group order a, b, c; deadline "
          f"{a.deadline:g} s; max_attempts {a.max_attempts}; concurrency {a.concurrency}; "
          f"every {a.stream_every}th request streamed\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for breaker, all_flaky in ((False, False), (True, False), (False, True)):
        row = scenario(breaker, a.n, a.concurrency, a.fail_rate, a.deadline, a.max_attempts, a.stream_every,
                       all_flaky)
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
