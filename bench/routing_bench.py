"""Routing decision microbenchmark: `Router.plan` per request (analysis + filters + strategy + the
RouteDecision), for the `rules` and `score` strategies over a 50-deployment group.

    .venv/bin/python bench/routing_bench.py                 # all cases, 20k decisions each
    .venv/bin/python bench/routing_bench.py -n 50000 --pin 0

Prompts cycle through the 450 labelled prompts of tests/data/tasks.jsonl (median 76 characters,
11 languages), so the classifier and the token counter see varied input, not one cached string.
Cases: each strategy with the default token estimate (tokens.py), with exact tiktoken counts, the
analysis alone, `score` with observed latencies (a TTFT EWMA on every deployment: the production
case), the decision plus its explanation (`to_dict()`: the per-candidate verdicts and the features
dict are built lazily, when the request log or explain reads them), the embedded default `auto` group
(4 deployments), a one-deployment `first-healthy` group (the quick path: nothing to analyse), and
the strategy alone on precomputed features (`order`, as the router calls it), and the token
estimate alone on ~8k-character prompts (the labelled prompts run together, 600 distinct ones so the
counter's LRU cache never holds the next one: what a long new prompt costs).
Filter rows: `rules` and `score` with every deployment eligible, with one deployment's circuit
breaker open (it goes to the back of the chain), and for an image request (a capability filter:
7 of the 26 cards the fleet cycles through lack vision, so 12 of 50 deployments drop out) next to
the same requests without the image. These are the rows that show per-request work a filter
triggers; routing should cost the same with a filter active as without.
`--blocks K` times each filter row in K turns, the six cases alternating and each turn normalised by
the reference loop timed just before it (the row: the median of the turns, min–max): this VM slows
down by a third for minutes at a time, and the turns spread a slow spell over every case.
`--only filters` runs just those rows; `--only classifier` the task classifiers alone (`cheap` and
`minilm`, the `task_classifier` config choice) on the real prompts of routing/data/real_prompts.jsonl.
`--only shortcuts`: the token estimate's bitwise count and
the classifier's packed weights against their plain definitions (the regex; float rows summed).
Reported: p50 / p99 / mean in µs.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from modelyard.catalog import builtin_cards  # noqa: E402
from modelyard.gateway import Gateway  # noqa: E402
from modelyard.loader import parse_config  # noqa: E402
from modelyard.routing.analyze import analyze  # noqa: E402
from modelyard.tokens import count_message_tokens  # noqa: E402
from modelyard.types import ChatRequest, ImagePart, Message, TextPart  # noqa: E402

N_DEPLOYMENTS = 50


def fleet() -> dict[str, Any]:
    # chat models only (embedding cards offer no capability, not even streaming) with room for every
    # benchmark prompt, so that "all eligible" rows filter nothing out
    cards = [n for n, c in builtin_cards().items()
             if not n.startswith("sim/") and "streaming" in c.capabilities and c.context_window >= 32_000]
    return {f"d{i:02d}": {"provider": "sim", "model": cards[i % len(cards)], "card": cards[i % len(cards)]}
            for i in range(N_DEPLOYMENTS)}


def config(exact: bool) -> dict[str, Any]:
    deps = fleet()
    names = list(deps)
    common = {"exact_tokens": True} if exact else {}
    rules = {
        "rules": [
            {"name": "vision", "when": {"capabilities": "vision", "complexity": {"gte": 0.5}}, "to": names[0:4]},
            {"name": "hard", "when": {"complexity": {"gte": 0.6}}, "to": names[4:10]},
            {"name": "code", "when": {"task": ["code_generation", "code_review"]}, "to": names[10:16]},
            {"name": "math", "when": {"task": ["math", "reasoning"]}, "to": names[16:20]},
            {"name": "languages", "when": {"any": [{"task": "translation"}, {"language": {"ne": "en"}}]},
             "to": names[20:26]},
            {"name": "night", "when": {"hour": {"between": [1, 5]}, "tier": "free"}, "to": names[26:30]},
            {"name": "long", "when": {"input_tokens": {"gte": 20000}}, "to": names[30:34]},
            {"name": "light", "when": {"task": ["chat", "simple_qa", "classification"], "complexity": {"lt": 0.3}},
             "to": names[34:44]},
        ],
        "then": "score",
        **common,
    }
    return {
        "deployments": deps,
        # a breaker opened by the benchmark stays open for the whole case
        "resilience": {"breaker": {"cooldown_s": 3600, "max_cooldown_s": 3600}},
        "model_groups": {
            "rules": {"deployments": names, "strategy": "rules", "options": rules},
            "score": {"deployments": names, "strategy": "score", "options": {**common}},
        },
    }


def prompts() -> list[ChatRequest]:
    rows = [json.loads(x) for x in (ROOT / "tests/data/tasks.jsonl").read_text(encoding="utf-8").splitlines() if x]
    return [ChatRequest(model="", messages=[Message("system", "You are a helpful assistant."),
                                            Message("user", r["text"])]) for r in rows]


def long_prompts(reqs: list[ChatRequest], n: int = 600, chars: int = 8000) -> list[ChatRequest]:
    """~`chars`-character user turns made of consecutive labelled prompts (all languages), distinct."""
    texts = [r.messages[-1].text() for r in reqs]
    out = []
    for i in range(n):
        parts, j, size = [], i, 0
        while size < chars:
            parts.append(texts[j % len(texts)])
            size += len(parts[-1]) + 2
            j += 7
        out.append(ChatRequest(model="", messages=[Message("user", "\n\n".join(parts) + f" ({i})")]))
    return out


def with_image(reqs: list[ChatRequest]) -> list[ChatRequest]:
    """The same prompts with an image attached to the user turn (the request needs `vision`)."""
    return [ChatRequest(model="", messages=[r.messages[0], Message("user", [TextPart(r.messages[-1].text()),
                                                                          ImagePart("https://x/cat.png")])])
            for r in reqs]


def filter_cases(reqs: list[ChatRequest]) -> list[tuple[str, Any, list[ChatRequest]]]:
    """(row name, decision function, requests) for `rules` and `score`: every deployment eligible, one
    breaker open (its own gateway, so the cases can be timed in turns), a capability filter."""
    images = with_image(reqs)
    cases: list[tuple[str, Any, list[ChatRequest]]] = []
    for strategy in ("rules", "score"):
        gw = Gateway(parse_config(config(False), "bench.yaml"), source="bench.yaml", request_log=False)
        opened = Gateway(parse_config(config(False), "bench.yaml"), source="bench.yaml", request_log=False)
        route, open_route = gw.resolve(strategy), opened.resolve(strategy)
        for _ in range(5):
            opened.health.failed("d03")
        assert opened.health.breaker.state("d03") == "open"
        assert opened.router.plan(open_route, reqs[0])[0][-1].name == "d03"
        assert len(gw.router.plan(route, images[0])[0]) < N_DEPLOYMENTS
        cases += [(f"`{strategy}` decision, all eligible", partial(gw.router.plan, route), reqs),
                  (f"`{strategy}` decision, one breaker open", partial(opened.router.plan, open_route), reqs),
                  (f"`{strategy}` decision, image request (vision filter: 38 of 50)", partial(gw.router.plan, route),
                   images)]
    return cases


def filter_rows(reqs: list[ChatRequest], n: int, blocks: int = 1) -> list[str]:
    """The filter rows, each case's n decisions timed in `blocks` turns, the cases taking turns so a
    slow spell of the box falls on all of them; each block is normalised by the reference loop timed
    just before it, and the row gives the median of the blocks' normalised p50s (min–max)."""
    cases = filter_cases(reqs)
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    norms: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(blocks):
        for name, fn, rs in cases:
            ref = reference_us()
            us = measure(fn, rs, max(1, n // blocks))
            times[name] += us
            norms[name].append(sorted(us)[len(us) // 2] * REFERENCE_US / ref)
    rows = []
    for name, _, _ in cases:
        ns = sorted(norms[name])
        spread = f" ({ns[0]:.1f}–{ns[-1]:.1f})" if blocks > 1 else ""
        rows.append(summary(name, times[name], norm=f"{statistics.median(ns):.1f}{spread}"))
    return rows


def shortcut_rows(reqs: list[ChatRequest], longs: list[ChatRequest], model: Any, n: int) -> list[str]:
    """The two shortcuts kept on the request path against their plain definitions: the token
    estimate's bitwise count against the regex (`_count_pieces`), and the classifier's packed
    weights against summing each feature's float row."""
    from modelyard.routing.classify import featurize, window
    from modelyard.tokens import _count_pieces, count_tokens

    def float_sums(r: ChatRequest) -> tuple[str, float]:
        acc = list(model.bias)
        for feat in featurize(window(r.messages[-1].text())):
            row = model.weights.get(feat)
            if row is not None:
                for i, x in enumerate(row):
                    acc[i] += x
        top = max(acc)
        return model.classes[acc.index(top)], 1.0 / sum([math.exp(v - top) for v in acc])

    text = [r.messages[-1].text() for r in reqs]
    return [
        summary("token estimate, chat-length prompts (bitwise count)", measure(count_tokens, text, n)),
        summary("token estimate, chat-length prompts (regex definition)", measure(_count_pieces, text, n)),
        summary("token estimate, ~8k-character prompts (regex definition)",
                measure(lambda r: _count_pieces(r.messages[-1].text()), longs, min(n, 2000))),
        summary("classifier, packed weights", measure(lambda r: model.analyze_window(window(r.messages[-1].text())),
                                                      reqs, n)),
        summary("classifier, float rows summed (plain)", measure(float_sums, reqs, n)),
    ]


def measure(fn: Any, reqs: list[ChatRequest], n: int) -> list[float]:
    for r in reqs[:200]:  # warm-up
        fn(r)
    out: list[float] = []
    clock = time.perf_counter_ns
    m = len(reqs)
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            r = reqs[i % m]
            t0 = clock()
            fn(r)
            out.append((clock() - t0) / 1000.0)
    finally:
        gc.enable()
    return out


def summary(name: str, us: list[float], ref: float | None = None, norm: str | None = None) -> str:
    """A table row; with `ref` (the reference loop's p50 measured just before, on the same core), the
    p50 is also given as it would be on a machine where that loop takes REFERENCE_US (`norm`: that
    figure worked out by the caller)."""
    us = sorted(us)
    p50 = us[len(us) // 2]
    p99 = us[int(len(us) * 0.99)]
    if norm is None:
        norm = f"{p50 * REFERENCE_US / ref:.1f}" if ref else "—"
    return f"| {name} | {p50:.1f} | {p99:.1f} | {statistics.fmean(us):.1f} | {norm} |"


REFERENCE_US = 0.75  # `python -m timeit "sum(range(100))"` on a typical desktop core


def reference_us() -> float:
    """p50 of `sum(range(100))` timed like a decision: this VM's speed drifts by several times between
    hours (and with other jobs on the core), so each target row is normalised by it, measured in place."""
    return statistics.median(measure(lambda r: sum(range(100)), [None] * 10, 20_000))  # type: ignore[list-item]


def classifier_rows(n: int) -> list[str]:
    """Each task classifier alone on the real prompts (routing/data/real_prompts.jsonl, windowed as
    `analyze` does): `cheap` (the sparse model) and `minilm` (its MiniLM embedding computed each time:
    the cache emptied, as for a new prompt; the gateway computes it in the pre-routing worker step)."""
    from modelyard.routing.classify import default_model, window
    from modelyard.routing.task_eval import load_real

    texts = [window(r["text"]) for r in load_real()]
    reqs = [ChatRequest(model="", messages=[Message("user", t)]) for t in texts]  # (measure cycles requests)
    cheap = default_model()
    rows = [summary("task classifier `cheap` (`analyze_window`, real prompts)", measure(
        lambda r: cheap.analyze_window(r.messages[0].content), reqs, n))]
    try:
        from modelyard.routing.task_minilm import minilm_model

        mini = minilm_model()
    except Exception as e:  # the learned extra is optional
        return [*rows, f"| task classifier `minilm` unavailable: {e} | | | |"]

    def fresh(r: ChatRequest) -> None:
        mini._probs.clear()
        mini.analyze_window(r.messages[0].content)

    rows.append(summary("task classifier `minilm` (embedding + head + sparse, real prompts)",
                        measure(fresh, reqs, min(n, 1500))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20_000, help="decisions per case")
    ap.add_argument("--pin", type=int, default=None, help="pin to this CPU core")
    ap.add_argument("--blocks", type=int, default=1,
                    help="filter rows: time each case in this many turns, the cases alternating")
    ap.add_argument("--only", choices=["filters", "shortcuts", "classifier"], default=None,
                    help="run only these rows")
    args = ap.parse_args()
    if args.pin is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.pin})
    reqs = prompts()
    rows = ["| case (50 deployments unless noted) | p50 µs | p99 µs | mean µs | p50 normalised µs |",
            "|---|---:|---:|---:|---:|"]
    if args.only == "shortcuts":
        model = Gateway(parse_config(config(False), "bench.yaml"), request_log=False).router.task_model
        print("\n".join(rows + shortcut_rows(reqs, long_prompts(reqs), model, min(args.n, 5000))))
        return
    if args.only == "classifier":
        print("\n".join(rows + classifier_rows(min(args.n, 5000))))
        return
    rows += filter_rows(reqs, args.n, args.blocks)
    if args.only == "filters":
        print("\n".join(rows))
        return
    for exact in (False, True):
        try:
            gw = Gateway(parse_config(config(exact), "bench.yaml"), source="bench.yaml", request_log=False)
        except Exception as e:  # the tokens extra is optional
            rows.append(f"| exact tokens unavailable: {e} | | | |")
            continue
        tag = "tiktoken counts" if exact else "token estimate"
        for strategy in ("rules", "score"):
            route = gw.resolve(strategy)
            plan = gw.router.plan
            rows.append(summary(f"`{strategy}` decision, {tag}",
                                measure(lambda r, route=route, plan=plan: plan(route, r), reqs, args.n)))
        p = gw.router.plans["score"]
        model = gw.router.task_model
        rows.append(summary(f"analysis only, {tag}", measure(
            lambda r, p=p, model=model: analyze(r, model=model, counter=p.counter), reqs, args.n)))
        if not exact:
            route = gw.resolve("score")
            rows.append(summary("`score` decision + its explanation built (`to_dict()`)", measure(
                lambda r, route=route, plan=gw.router.plan: plan(route, r)[1].to_dict(), reqs, args.n)))
            rnd = random.Random(1)
            for d in p.deployments:  # observed time to first token on every deployment
                gw.health.ok(d.name, latency_ms=rnd.uniform(500, 5000), ttft_ms=rnd.uniform(100, 2000))
            rows.append(summary("`score` decision, observed latencies", measure(
                lambda r, route=route, plan=gw.router.plan: plan(route, r), reqs, args.n)))
    small = Gateway.default(sim_only=True, request_log=False)  # the embedded `auto`: rules over 4 deployments
    route = small.resolve("auto")
    rows.append(summary("default `auto` decision (rules, 4 deployments)",
                        measure(lambda r: small.router.plan(route, r), reqs, args.n)))
    one = Gateway(parse_config({"deployments": {"up": {"provider": "sim", "model": "sim/fast"}},
                                "model_groups": {"g": {"deployments": ["up"]}}}, "bench.yaml"), request_log=False)
    route1 = one.resolve("g")
    rows.append(summary("one-deployment `first-healthy` group (quick path)",
                        measure(lambda r: one.router.plan(route1, r), reqs, args.n)))
    gw = Gateway(parse_config(config(False), "bench.yaml"), source="bench.yaml", request_log=False)
    for strategy in ("rules", "score"):
        p = gw.router.plans[strategy]
        feats = {id(r): analyze(r, model=gw.router.task_model) for r in reqs}
        deps = p.deployments
        order = p.strategy.order

        def order_only(r: ChatRequest, order: Any = order, feats: dict[int, Any] = feats, deps: Any = deps) -> None:
            order(r, feats[id(r)], deps)

        rows.append(summary(f"`{strategy}` order only (features precomputed)", measure(order_only, reqs, args.n)))
    longs = long_prompts(reqs)
    rows.append(summary("token estimate alone, ~8k-character prompts (~2k tokens)",
                        measure(lambda r: count_message_tokens(r.messages), longs, min(args.n, 5000))))
    rows += shortcut_rows(reqs, longs, gw.router.task_model, min(args.n, 5000))
    rows += classifier_rows(min(args.n, 5000))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
