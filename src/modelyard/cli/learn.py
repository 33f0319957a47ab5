"""`modelyard train | eval | calibrate | replay`: learned routers from data to gateway.

    modelyard train --data FILE.jsonl --router {knn,classifier,mf} --strong MODEL --weak MODEL -o ROUTER
    modelyard eval --data FILE.jsonl --router ROUTER --strong MODEL --weak MODEL [--scores-out F] [--plot F]
    modelyard calibrate --router ROUTER [--data FILE] --strong-share 0.3   → prints the threshold
    modelyard replay --log DB --router ROUTER [--config CFG]

Data problems, bad router files and a missing embedding model are one-line errors (exit 2).
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from .app import ConfigOpt, app, fail, parse_pairs

RouterKind = typer.Option("--router", help="router kind: knn (best cross-validated) | classifier (no embedding) | "
                                           "mf (N models)")


LEARNED_EXTRA = "pip install 'modelyard[learned]'"


def need_learned(command: str, *modules: str) -> None:
    """One line naming the extra to install when a module of the learned extra is missing, instead of
    the import's traceback."""
    import importlib.util

    for module in ("numpy", *modules):
        if importlib.util.find_spec(module) is None:
            fail(f"modelyard {command} needs the learned-routing extra ({module} is not installed): {LEARNED_EXTRA}")


def _errors() -> tuple[type[Exception], ...]:
    from ..embed.backends import EmbeddingError
    from ..routing.learned.base import RouterFileError
    from ..routing.learned.data import DataError

    return (DataError, RouterFileError, EmbeddingError, ValueError)


def _progress(total: int, what: str) -> Any:
    """A callback printing progress to stderr (quiet for small sets)."""
    t0 = time.perf_counter()
    step = max(1, total // 10)
    last = [0]

    def cb(done: int) -> None:
        if total >= 200 and (done - last[0] >= step or done == total):
            last[0] = done
            rate = done / max(time.perf_counter() - t0, 1e-9)
            typer.echo(f"  {what}: {done}/{total} ({rate:.0f}/s)", err=True)

    return cb


@app.command()
def train(
    output: Annotated[str, typer.Option("-o", "--output", help="router file to write (.npz)")],
    router: Annotated[str, RouterKind] = "knn",
    data: Annotated[str | None, typer.Option("--data", help="routing data (JSONL: prompt, scores by model)")] = None,
    from_log: Annotated[str | None, typer.Option("--from-log", help="request log DB: train on feedback")] = None,
    strong: Annotated[str | None, typer.Option("--strong", help="strong (expensive) model")] = None,
    weak: Annotated[str | None, typer.Option("--weak", help="weak (cheap) model")] = None,
    embedding: Annotated[str, typer.Option("--embedding", help="minilm-l6-v2-int8 | hash-ngram-v1")] =
        "minilm-l6-v2-int8",
    param: Annotated[list[str] | None, typer.Option("--param", help="router hyper-parameter key=value")] = None,
) -> None:
    """Train a learned router (knn, classifier or mf) and write it to a router file."""
    need_learned("train", *(["sklearn"] if router == "classifier" else []))
    from ..routing.learned.data import load_jsonl
    from ..routing.learned.train import TRAINABLE, embed_prompts, fit_router, needs_embedding, pick_models

    if router not in TRAINABLE:
        fail(f"--router must be one of: {', '.join(TRAINABLE)}")
    if (data is None) == (from_log is None):
        fail("give exactly one of --data FILE.jsonl or --from-log DB")
    try:
        if data is not None:
            examples, where, sparse = load_jsonl(data), data, False
        else:
            from ..eval.fromlog import examples_from_log

            examples, skipped = examples_from_log(str(from_log))
            where, sparse = str(from_log), True
            typer.echo(f"{len(examples)} scored prompts from the log ({skipped} scored requests without a prompt "
                       "skipped)", err=True)
            if not examples:
                fail(f"{from_log}: no feedback with prompts to train on (POST /v1/feedback with 'prompt')")
        pick_models(examples, strong, weak, where, sparse=sparse)  # name problems before the slow part
        t0 = time.perf_counter()
        params = parse_pairs(param or [], "--param")
        E = embed_prompts([ex.prompt for ex in examples], embedding,
                          progress=_progress(len(examples), "embedding")) if needs_embedding(router, params) else None
        r = fit_router(router, examples, strong=strong, weak=weak, backend=embedding, E=E, where=where,
                       params=params, sparse=sparse)
        r.save(output)
    except _errors() as e:
        fail(str(e))
    typer.echo(f"trained {router} router on {len(examples)} prompts, models: {', '.join(r.models)} "
               f"(default pair: strong {r.strong}, weak {r.weak}) in {time.perf_counter() - t0:.1f}s → {output}")


@app.command(name="eval")
def eval_cmd(
    data: Annotated[str, typer.Option("--data", help="routing data (JSONL) to evaluate on")],
    router: Annotated[str, typer.Option("--router", help="router file")],
    strong: Annotated[str, typer.Option("--strong", help="strong (expensive) model")],
    weak: Annotated[str, typer.Option("--weak", help="weak (cheap) model")],
    scores_out: Annotated[str | None, typer.Option("--scores-out", help="write {id, score} per prompt")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="write the cost-quality curve (PNG)")] = None,
) -> None:
    """Evaluate a router on a strong/weak pair: APGR, CPT(50%), CPT(80%), quality and cost per strong share."""
    need_learned("eval", *(["matplotlib"] if plot else []))
    import orjson

    from ..eval.pair import PairEval
    from ..eval.report import plot_curves, print_report
    from ..routing.learned.base import load_router
    from ..routing.learned.data import load_jsonl

    try:
        r = load_router(router)
        examples = load_jsonl(data)
        ev = PairEval.from_examples(examples, strong, weak, where=data, costs=r.costs)
        prompts = [ex.prompt for ex in examples]
        from ..routing.learned.train import router_inputs

        Q = r.predict_arrays(*router_inputs(r, prompts, _progress(len(prompts), "embedding")))
        scores = r.preference(Q, strong, weak)
    except _errors() as e:
        fail(str(e))
    name = r.kind
    ev.add(name, scores)
    print_report(ev, name, scores)
    if scores_out:
        with open(scores_out, "wb") as f:
            for pid, s in zip(ev.ids, scores, strict=True):
                f.write(orjson.dumps({"id": pid, "score": float(s)}) + b"\n")
        typer.echo(f"scores → {scores_out}", err=True)
    if plot:
        plot_curves(ev, plot)
        typer.echo(f"plot → {plot}", err=True)


@app.command()
def calibrate(
    router: Annotated[str, typer.Option("--router", help="router file")],
    data: Annotated[str | None, typer.Option("--data", help="prompts to calibrate on (default: the training "
                                                            "predictions stored in the router file)")] = None,
    strong_share: Annotated[float | None, typer.Option("--strong-share", help="target share of strong calls")] =
        None,
    budget: Annotated[float | None, typer.Option("--budget", help="target mean USD per request")] = None,
    strong: Annotated[str | None, typer.Option("--strong", help="strong model (default: the router's)")] = None,
    weak: Annotated[str | None, typer.Option("--weak", help="weak model (default: the router's)")] = None,
    write: Annotated[bool, typer.Option("--write", help="store the threshold in the router file")] = False,
) -> None:
    """Find the decision threshold for a target strong-call share or cost budget; prints it on stdout."""
    need_learned("calibrate")
    import numpy as np

    from ..routing.learned.base import choose_many, load_router
    from ..routing.learned.calibrate import costs_vector, threshold_for_budget, threshold_for_strong_share
    from ..routing.learned.data import load_jsonl

    if (strong_share is None) == (budget is None):
        fail("give exactly one of --strong-share or --budget")
    try:
        r = load_router(router)
        if strong or weak:
            r.strong, r.weak = strong or r.strong, weak or r.weak
            r.pair()  # checks the names
        if data is not None:
            prompts = [ex.prompt for ex in load_jsonl(data)]
            from ..routing.learned.train import router_inputs

            Q = r.predict_arrays(*router_inputs(r, prompts, _progress(len(prompts), "embedding")))
        elif r.calib is not None:
            Q = r.calib
        else:
            fail(f"{router} stores no training predictions: pass --data")
        costs = costs_vector(r.models, r.costs, r.strong)
        if strong_share is not None:
            if r.strong is None:
                fail("this router has no default strong model: pass --strong and --weak")
            t = threshold_for_strong_share(Q, costs.tolist(), r.index[r.strong], strong_share)
        else:
            if not all(m in r.costs for m in r.models):
                fail("the router file has no per-model costs (the training data had no 'cost'): use --strong-share")
            assert budget is not None  # exactly one of the two: checked above
            t = threshold_for_budget(Q, costs.tolist(), float(budget))
    except _errors() as e:
        fail(str(e))
    picks = choose_many(Q, costs, threshold=t)
    shares = ", ".join(f"{m} {np.mean(picks == i):.1%}" for i, m in enumerate(r.models))
    cost = f", mean cost ${float(costs[picks].mean()):.6f}" if all(m in r.costs for m in r.models) else ""
    typer.echo(f"threshold {t:.6f} on {len(Q)} prompts → {shares}{cost}", err=True)
    if write:
        r.threshold = t
        r.save(router)
        typer.echo(f"threshold stored in {router}", err=True)
    sys.stdout.write(f"{t:.6f}\n")


@app.command()
def replay(
    log: Annotated[str, typer.Option("--log", help="request log DB (server.request_log.path)")],
    router: Annotated[str, typer.Option("--router", help="router file")],
    config: ConfigOpt = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="decision threshold (default: the "
                                                                        "router file's, else 0)")] = None,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="ROUTER_MODEL=NAME: price a router model as a deployment of --config or a catalog "
                      "card, and count that deployment's logged requests as that model (repeatable)")] = None,
) -> None:
    """Estimate cost and predicted quality of logged traffic had this router decided.

    Every router model needs a price: from a deployment of the same name (or model) in --config, a
    catalog card of its name, a --map, or the router file's training costs. A model with none is an
    error rather than a silent $0, which would make any policy look free."""
    need_learned("replay")
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from ..catalog import Catalog
    from ..eval.replay import replay as run_replay
    from ..routing.learned.base import load_router

    if not Path(log).is_file():
        fail(f"{log}: request log not found")
    try:
        r = load_router(router)
        prices: dict[str, tuple[float, float]] = {}
        dep_model: dict[str, str] = {}
        gw_deps: dict[str, Any] = {}
        if config:
            from .app import load_gateway

            gw_deps = load_gateway(config, request_log=False).deployments
        for name, d in gw_deps.items():
            m = name if name in r.index else d.model if d.model in r.index else None
            if m is not None:
                dep_model[name] = m
                prices.setdefault(m, (d.card.input_per_m, d.card.output_per_m))
        cat = Catalog()
        for item in mapping or []:
            m, sep, target = item.partition("=")
            if not sep or m not in r.index:
                fail(f"--map {item}: expected ROUTER_MODEL=NAME with a router model ({', '.join(r.models)})")
            dep = gw_deps.get(target)
            card = dep.card if dep is not None else cat.get(target)
            if card is None:
                fail(f"--map {item}: '{target}' is neither a deployment of --config nor a catalog card")
            prices[m] = (card.input_per_m, card.output_per_m)
            dep_model[target] = m
        for m in r.models:
            dep_model.setdefault(m, m)
            card = cat.get(m)
            if m not in prices and card is not None:
                prices[m] = (card.input_per_m, card.output_per_m)
        unpriced = [m for m in r.models if m not in prices and m not in r.costs]
        if unpriced:
            fail(f"no price for router model(s) {', '.join(unpriced)}: name deployments of those models in "
                 f"--config, or map each with --map {unpriced[0]}=DEPLOYMENT_OR_CATALOG_CARD")
        t = threshold if threshold is not None else (r.threshold or 0.0)
        res = run_replay(log, r, prices, dep_model, threshold=t)
    except _errors() as e:
        fail(str(e))
    table = Table(title=f"replay of {log}: {res.replayed} of {res.requests} logged requests have a known prompt")
    for col in ("policy", "cost (USD)", "predicted quality", "feedback score", "picks"):
        table.add_column(col)

    def q(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    table.add_row("as logged", f"{res.logged_cost:.6f}", q(res.logged_quality), q(res.feedback_quality), "")
    table.add_row(f"{r.kind} router", f"{res.policy_cost:.6f}", q(res.policy_quality if res.replayed else None), "",
              ", ".join(f"{m}: {n}" for m, n in sorted(res.picks.items())))
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    if res.unpriced:
        typer.echo(f"note: {', '.join(res.unpriced)} priced at the router file's training costs", err=True)
    if res.requests and not res.replayed:
        typer.echo("note: the request log keeps no prompt text; send 'prompt' with POST /v1/feedback to replay "
                   "those requests", err=True)
