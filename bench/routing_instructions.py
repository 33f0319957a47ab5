"""Instructions per routing decision, counted by valgrind: a figure that barely moves with the load of
the shared box (timings there move by 10-20 % between runs), so changes of a few percent show.

    PYTHONPATH=src .venv/bin/python bench/routing_instructions.py            # the six filter rows
    PYTHONPATH=src .venv/bin/python bench/routing_instructions.py rules-all analysis rules-order

Each case runs its step on the 450 labelled prompts (bench/routing_bench.py's groups) once to warm up,
then 900 times under callgrind with collection on only inside those 900 calls (`--toggle-collect` on
the C function that drains them, `deque.extendleft`: start-up, imports and warm-up are not counted;
needs valgrind, and a Python whose libpython has its symbols, as pyenv's builds do).
Cases: `<rules|score>-<all|open|image|explained>` (`Router.plan`, every deployment eligible / one
breaker open / an image request / every deployment eligible and the decision's `to_dict()`, what the
request log reads), `analysis`, `rules-order`, `score-order` (the strategy alone on precomputed
features, every deployment eligible).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

N = 900
ROWS = ["rules-all", "rules-open", "rules-image", "score-all", "score-open", "score-image"]


def step(case: str) -> Callable[[int], object]:
    from routing_bench import config, prompts, with_image

    from modelyard.gateway import Gateway
    from modelyard.loader import parse_config
    from modelyard.routing.analyze import analyze

    reqs = prompts()
    gw = Gateway(parse_config(config(False), "bench.yaml"), source="bench.yaml", request_log=False)
    router = gw.router
    if case == "analysis":
        return lambda i: analyze(reqs[i], model=router.task_model)
    if case.endswith("-order"):
        plan = router.plans[case.removesuffix("-order")]
        feats = [analyze(r, model=router.task_model) for r in reqs]
        cands = plan.filter.run(feats[0]).eligible
        return lambda i: plan.strategy.order(reqs[i], feats[i], cands)
    strategy, kind = case.split("-")
    route = gw.resolve(strategy)
    if kind == "explained":  # the decision and its explanation (what the request log reads)
        return lambda i: router.plan(route, reqs[i])[1].to_dict()
    if kind == "open":
        for _ in range(5):
            gw.health.failed("d03")
    rs = with_image(reqs) if kind == "image" else reqs
    return lambda i: router.plan(route, rs[i])


def inner(case: str) -> None:
    fn = step(case)
    positions = [i % 450 for i in range(N)]
    for i in range(450):
        fn(i)
    gc.collect()
    gc.disable()
    deque(maxlen=0).extendleft(map(fn, positions))  # counted: callgrind collects inside this call only


def count(case: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=deque_extendleft",
                        f"--callgrind-out-file={out}", sys.executable, __file__, "--inner", case],
                       capture_output=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        sys.exit(f"no instruction count for {case}")
    return int(found.group(1)) / N


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=ROWS)
    ap.add_argument("--inner", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.inner)
        return
    for case in args.cases:
        print(f"| {case} | {count(case):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
