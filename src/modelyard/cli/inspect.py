"""`modelyard models` and `modelyard chat`: look at the fleet, send one request."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any

import typer

from ..errors import ModelyardError
from .app import ConfigOpt, app, fail, load_gateway


@app.command()
def models(config: ConfigOpt = None) -> None:
    """List deployments with their prices and capabilities, and the model groups."""
    from rich.console import Console
    from rich.table import Table

    gw = load_gateway(config, request_log=False)
    t = Table(title=f"deployments ({gw.source})")
    for col in ("deployment", "provider", "model", "$/1M in", "$/1M out", "context", "capabilities"):
        t.add_column(col, justify="right" if col.startswith(("$", "context")) else "left")
    for d in gw.deployments.values():
        c = d.card
        t.add_row(d.name, d.provider, d.model, f"{c.input_per_m:.2f}", f"{c.output_per_m:.2f}",
                  f"{c.context_window:,}", ", ".join(sorted(c.capabilities)))
    g = Table(title="model groups")
    for col in ("group", "strategy", "deployments", "fallbacks"):
        g.add_column(col)
    for r in gw.routes.values():
        if r.is_group:
            g.add_row(r.name, r.strategy, ", ".join(d.name for d in r.deployments),
                      ", ".join(d.name for d in r.fallbacks))
    console = Console()
    console.print(t)
    console.print(g)


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="the user message")],
    model: Annotated[str, typer.Option("--model", "-m", help="model group or deployment")] = "auto",
    config: ConfigOpt = None,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    stream: Annotated[bool, typer.Option(help="print the answer as it streams")] = False,
    mode: Annotated[str | None, typer.Option(help="race | all | vote | judge | fuse (docs/EXECUTION.md)")] = None,
    models: Annotated[str | None, typer.Option(help="comma-separated candidates for --mode")] = None,
    judge: Annotated[str | None, typer.Option(help="--mode judge: the model that picks")] = None,
    min_agreement: Annotated[int | None, typer.Option(help="--mode vote: votes the answer needs")] = None,
    normalize: Annotated[str | None, typer.Option(help="--mode vote: exact|fold|label|number|choice|json")] = None,
) -> None:
    """Send one request through the gateway in-process; print the answer, model, cost, latency."""
    from ..client import AsyncClient
    from .modes import summary_lines

    gw = load_gateway(config, request_log=False)
    messages: list[dict[str, Any]] = ([{"role": "system", "content": system}] if system else [])
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    if mode:
        params["modelyard"] = {k: v for k, v in {"mode": mode, "models": models, "judge": judge,
                               "min_agreement": min_agreement, "normalize": normalize}.items() if v is not None}

    async def run() -> None:
        client = AsyncClient(gw)
        t0 = time.perf_counter()
        try:
            if stream:
                usage = None
                async for chunk in client.stream(messages, model=model, **params):
                    if chunk.text:
                        print(chunk.text, end="", flush=True)
                    usage = chunk.usage or usage
                tokens = f" · tokens {usage.input_tokens}+{usage.output_tokens}" if usage else ""
                print(f"\n\n[model {model}{tokens} · {(time.perf_counter() - t0) * 1000:.0f} ms]", file=sys.stderr)
            else:
                r = await client.chat(messages, model=model, **params)
                print(r.text or "\n".join(f"tool call {c.name}({c.arguments})" for c in r.tool_calls)
                      or f"(no answer: {(r.modelyard or {}).get('outcome', 'empty reply')})")
                if r.modelyard:
                    print("\n" + "\n".join(summary_lines(r.modelyard)), file=sys.stderr)
                print(f"\n[deployment {r.deployment} ({r.model}) · ${r.cost_usd:.6f} · "
                      f"tokens {r.usage.input_tokens}+{r.usage.output_tokens} · {r.latency_ms:.0f} ms]",
                      file=sys.stderr)
        finally:
            await client.aclose()

    try:
        asyncio.run(run())
    except ModelyardError as e:
        fail(f"{e.type}: {e.message}", 1)
