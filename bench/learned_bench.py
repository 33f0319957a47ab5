"""Learned-routing latency: embedding alone, prediction alone, and the whole routing decision
(Router.plan of a `learned` group: analysis, filters, embedding, prediction, decision rule), for short
chat prompts, MMLU prompts and long (~2k word-piece) prompts.

    taskset -c 1 .venv/bin/python bench/learned_bench.py [--router FILE.npz] [--n 300] [--train-n 4147]

Without --router it trains one router per kind (defaults) on the first --train-n prompts of
../shared/data/routing/mmlu_train.jsonl. Prompts are distinct and the strategy's embedding cache is
off — the uncached worst case — except for the "repeated prompt" rows (cache on, every prompt seen
before: the decision without the embedding, i.e. the work that grows with the prompt's length).
Prints p50/p99 in ms per prompt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from modelyard import tokens
from modelyard.defaults import default_config_data
from modelyard.embed.backends import MAX_TOKENS, MINILM, get_embedder
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.routing.learned.base import load_router
from modelyard.routing.learned.data import load_jsonl
from modelyard.routing.learned.train import TRAINABLE, embed_prompts, fit_router
from modelyard.types import ChatRequest, Message

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing" / "mmlu_train.jsonl"
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
CHAT = ["hi! can you help me plan a birthday party for my daughter {i}?",
        "what's the capital of australia, and why isn't it sydney? ({i})",
        "write a python function that merges {i} sorted lists",
        "summarise the plot of hamlet in three sentences, version {i}",
        "a train leaves at {i}:00 going 60 mph; another at {i}:30 going 80 mph. when does the second catch up?"]


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {statistics.median(xs):6.2f} ms   p99 {xs[int(0.99 * (len(xs) - 1))]:6.2f} ms"


def timed(fn: Callable[[Any], object], items: Iterable[Any]) -> list[float]:
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append((time.perf_counter() - t) * 1000)
    return out


def long_prompts(texts: list[str], n: int, words: int = 1500) -> list[str]:
    """~2k word pieces each: a 'document' of consecutive MMLU prompts and a question at the end."""
    out = []
    for i in range(n):
        doc, j = [], i
        while sum(len(d.split()) for d in doc) < words:
            doc.append(texts[j % len(texts)])
            j += 7
        out.append("Here are my notes from this week's study group:\n\n" + "\n\n".join(doc)
                   + f"\n\nWhich of these questions is hardest, and why? ({i})")
    return out


def forget_token_counts() -> None:
    """Empty the token counter's LRU cache (texts of 256–32k characters): without this, the routers
    timed after the first on the same long prompt would find its count cached and skip ~1 ms."""
    cached = getattr(tokens, "_count_cached", None)
    if cached is not None:
        cached.cache_clear()


def gateway_for(router_file: str, cache_size: int) -> tuple[Gateway, Any]:
    data = default_config_data(sim_only=True)
    data["model_groups"]["routed"] = {"deployments": ["sim/fast", "sim/frontier"], "strategy": "learned",
                                      "options": {"router_file": router_file, "strong_share": 0.3,
                                                  "cache_size": cache_size,
                                                  "models": {"sim/frontier": STRONG, "sim/fast": WEAK}}}
    gw = Gateway(parse_config(data, "bench.yaml"), request_log=False)
    return gw, gw.resolve("routed")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", action="append", help="router file(s); default: train knn, classifier, mf")
    ap.add_argument("--n", type=int, default=300, help="prompts of each kind")
    ap.add_argument("--train-n", type=int, default=4147, help="training prompts for the default routers")
    a = ap.parse_args()
    examples = load_jsonl(DATA)
    mmlu = [ex.prompt for ex in examples[-a.n:]]
    kinds = {"short": [CHAT[i % len(CHAT)].format(i=i) for i in range(a.n)], "MMLU": mmlu,
             "long": long_prompts([ex.prompt for ex in examples], a.n)}
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    t = time.perf_counter()
    emb = get_embedder(MINILM)
    print(f"MiniLM load (sha256 check + ONNX session): {(time.perf_counter() - t) * 1000:.0f} ms; "
          f"graph: {getattr(emb, 'graph', 'source')} {getattr(emb, 'graph_note', '')}")
    emb.embed(["warm up"])
    files = a.router or []
    if not files:
        tmp = Path(tempfile.mkdtemp())
        train = examples[:a.train_n]
        t = time.perf_counter()
        E = embed_prompts([ex.prompt for ex in train])
        print(f"embedding {len(train)} training prompts in bulk: {len(train) / (time.perf_counter() - t):.0f}/s")
        for kind in TRAINABLE:
            path = tmp / f"{kind}.npz"
            fit_router(kind, train, strong=STRONG, weak=WEAK, E=E).save(path)
            files.append(str(path))
    routers = [load_router(f) for f in files]
    cut = routers[0].embed_tokens
    for name, prompts in kinds.items():
        n_tok = [len(e.ids) for e in emb.tokenizer.encode_batch(prompts)]  # type: ignore[attr-defined]
        full, short = [], []
        for p in prompts:  # interleaved, so both see the same load on a shared box
            full += timed(lambda x: emb.embed([x]), [p])
            short += timed(lambda x: emb.embed([x], max_tokens=cut), [p])
        print(f"{name}: median {int(np.median(n_tok))} word pieces")
        print(f"  embedding, all ≤{MAX_TOKENS} word pieces: {pct(full)}")
        print(f"  embedding, first {cut} word pieces:  {pct(short)}")
    gws = []
    for f, r in zip(files, routers, strict=True):
        E = r.embed(mmlu[:100])
        F = r.features(mmlu[:100]) if r.uses_features else None
        pred = timed(lambda i: r.predict_arrays(E[i:i + 1], None if F is None else F[i:i + 1]), range(100))  # noqa: B023
        print(f"{r.kind}: prediction alone (embedding given) {pct(pred)}; "
              f"{'embeds the prompt' if r.uses_embedding else 'no embedding'}")
        gws.append(gateway_for(f, 0))
    for name, prompts in kinds.items():
        reqs = [ChatRequest(model="routed", messages=[Message("user", p)]) for p in prompts]
        times: list[list[float]] = [[] for _ in gws]
        alone: list[float] = []
        for gw, route in gws:
            gw.plan(route, reqs[0])
        for p, q in zip(prompts, reqs, strict=True):  # interleaved across routers, with the embedding alone
            for i, (gw, route) in enumerate(gws):
                forget_token_counts()  # each router pays the prompt's token count, as a new prompt would
                times[i] += timed(lambda x: gw.plan(route, x), [q])  # noqa: B023
            alone += timed(lambda x: emb.embed([x], max_tokens=cut), [p])
        print(f"  {name} prompts, embedding alone (first {cut} word pieces), same loop: {pct(alone)}")
        for r, ts in zip(routers, times, strict=True):
            print(f"  decision, {r.kind:>10}, {name:>5} prompts: {pct(ts)}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for f, r in zip(files, routers, strict=True):  # everything but the embedding: what grows with length
        if r.uses_embedding:
            gw, route = gateway_for(f, 4096)
            for name, prompts in kinds.items():
                reqs = [ChatRequest(model="routed", messages=[Message("user", p)]) for p in prompts]
                for q in reqs:
                    gw.plan(route, q)
                print(f"  decision, {r.kind:>10}, repeated {name:>5} prompt (embedding cache hit): "
                      f"{pct(timed(lambda q: gw.plan(route, q), reqs))}")  # noqa: B023


if __name__ == "__main__":
    main()
