"""Learned-routing latency: embedding alone, prediction alone, and the whole routing decision
(Router.plan of a `learned` group: analysis, filters, embedding, prediction, decision rule).

    taskset -c 0 .venv/bin/python bench/learned_bench.py [--router FILE.npz] [--n 300]

Without --router it trains one per kind on the first 400 prompts of ../shared/data/routing/mmlu_train.jsonl.
Prompts are distinct (the strategy's embedding cache is off) — the worst case; a repeated prompt
costs only the prediction. Prints p50/p90 in ms per prompt.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from modelyard.cache.embed import MINILM, get_embedder
from modelyard.config import parse_config
from modelyard.defaults import default_config_data
from modelyard.gateway import Gateway
from modelyard.routing.learned.base import load_router
from modelyard.routing.learned.data import load_jsonl
from modelyard.routing.learned.train import fit_router
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
    return f"p50 {statistics.median(xs):6.2f} ms   p90 {xs[int(0.9 * (len(xs) - 1))]:6.2f} ms"


def timed(fn, items) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", action="append", help="router file(s); default: train knn, classifier, mf")
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    examples = load_jsonl(DATA)
    mmlu = [ex.prompt for ex in examples[-a.n:]]
    chat = [CHAT[i % len(CHAT)].format(i=i) for i in range(a.n)]
    t = time.perf_counter()
    emb = get_embedder(MINILM)
    print(f"MiniLM load (sha256 check + ONNX session): {(time.perf_counter() - t) * 1000:.0f} ms")
    emb.embed(["warm up"])
    tok = [len(e.ids) for e in emb.tokenizer.encode_batch(chat)]  # type: ignore[attr-defined]
    tok2 = [len(e.ids) for e in emb.tokenizer.encode_batch(mmlu)]  # type: ignore[attr-defined]
    for name, prompts, n_tok in (("chat", chat, tok), ("MMLU", mmlu, tok2)):
        times = timed(lambda p: emb.embed([p]), prompts)
        print(f"embedding, {name} prompts (median {int(np.median(n_tok))} tokens): {pct(times)}")

    tmp = Path(tempfile.mkdtemp())
    files = a.router or []
    if not files:
        train = examples[:400]
        for kind in ("knn", "classifier", "mf"):
            path = tmp / f"{kind}.npz"
            fit_router(kind, train, strong=STRONG, weak=WEAK).save(path)
            files.append(str(path))
    for f in files:
        r = load_router(f)
        E = emb.embed(mmlu[:50])
        F = r.features(mmlu[:50]) if r.uses_features else None
        pred = timed(lambda i: r.predict_arrays(E[i:i + 1], None if F is None else F[i:i + 1]), range(50))  # noqa: B023
        data = default_config_data(sim_only=True)
        data["model_groups"]["routed"] = {"deployments": ["sim/fast", "sim/frontier"], "strategy": "learned",
                                          "options": {"router_file": f, "strong_share": 0.3, "cache_size": 0,
                                                      "models": {"sim/frontier": STRONG, "sim/fast": WEAK}}}
        gw = Gateway(parse_config(data, "bench.yaml"), request_log=False)
        route = gw.resolve("routed")
        for name, prompts in (("chat", chat), ("MMLU", mmlu)):
            reqs = [ChatRequest(model="routed", messages=[Message("user", p)]) for p in prompts]
            gw.plan(route, reqs[0])
            dec = timed(lambda q: gw.plan(route, q), reqs)  # noqa: B023
            print(f"{r.kind:>10} decision, {name:>4} prompts: {pct(dec)}   (prediction alone: {pct(pred)})")


if __name__ == "__main__":
    main()
