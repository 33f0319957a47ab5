"""The `modelyard` command: serve, demo, models, chat.

Config errors print `file: field: problem` and exit 2, without a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Annotated, Any

import typer

from .errors import ConfigError, ModelyardError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="modelyard: an LLM gateway that sends every request to the right model.")

ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (default: embedded defaults)")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load_gateway(config: str | None, *, sim_only: bool = False, request_log: bool | None = None) -> Any:
    from .gateway import Gateway

    try:
        if config:
            return Gateway.from_file(config, request_log=request_log)
        return Gateway.default(sim_only=sim_only, request_log=request_log)
    except ConfigError as e:
        _fail(str(e))


def _run_server(config: str | None, host: str | None, port: int | None, workers: int | None,
                sim_only: bool, banner: bool) -> None:
    import uvicorn

    from .server.app import create_app

    gw = _load_gateway(config, sim_only=sim_only)
    server = gw.config.server
    host = host or server.host
    port = port if port is not None else server.port
    workers = workers or server.workers
    try:
        app_obj = create_app(gw)
    except ConfigError as e:
        _fail(str(e))
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    if banner:
        _print_banner(gw, host, port)
    if workers > 1:
        # each worker process builds its own gateway from the same config (SO_REUSEPORT-style accept)
        if config:
            os.environ["MODELYARD_CONFIG"] = os.path.abspath(config)
        if sim_only:
            os.environ["MODELYARD_SIM_ONLY"] = "1"
        uvicorn.run("modelyard.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    loop=loop, http=http, lifespan="on", access_log=False, log_level="warning",
                    server_header=False)
    else:
        uvicorn.run(app_obj, host=host, port=port, loop=loop, http=http, lifespan="on", access_log=False,
                    log_level="warning", server_header=False)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _print_banner(gw: Any, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    names = ", ".join(sorted(n for n, r in gw.routes.items() if r.is_group))
    print(f"modelyard serving {len(gw.deployments)} deployments on {base}  (config: {gw.source})", flush=True)
    print(f"  model groups: {names}", flush=True)
    print(f"  try:  curl {base}/v1/chat/completions -H 'content-type: application/json' "
          "-d '{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'", flush=True)
    print(f"  or:   OpenAI(base_url='{base}/v1', api_key='any').chat.completions.create(model='auto', ...)",
          flush=True)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address (default from config: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default from config: 4000)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (one event loop each)")] = None,
) -> None:
    """Run the OpenAI- and Anthropic-compatible gateway."""
    _run_server(config, host, port, workers, sim_only=False, banner=True)


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 4000,
    traffic: Annotated[int, typer.Option(help="send this many sample requests once the server is up")] = 0,
) -> None:
    """Serve the simulated fleet (no API keys needed), optionally with sample traffic."""
    if traffic:
        import threading

        threading.Thread(target=_sample_traffic, args=(f"http://{host}:{port}", traffic), daemon=True).start()
    _run_server(None, host, port, 1, sim_only=True, banner=True)


SAMPLE_PROMPTS = [
    "What is the capital of Australia?",
    "Write a Python function that checks whether a string is a palindrome.",
    "Summarise the plot of Hamlet in three sentences.",
    "Translate 'good morning, how are you?' into Spanish.",
    "A train leaves at 3pm going 60 km/h; another at 4pm going 90 km/h. When does the second catch up?",
]


def _sample_traffic(base: str, n: int) -> None:
    import urllib.request

    import orjson

    for _ in range(100):  # wait for the server
        try:
            urllib.request.urlopen(base + "/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    for i in range(n):
        body = orjson.dumps({"model": ["auto", "fast", "smart", "cheap"][i % 4],
                             "messages": [{"role": "user", "content": SAMPLE_PROMPTS[i % len(SAMPLE_PROMPTS)]}]})
        req = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                print(f"  sample {i + 1}/{n}: {r.headers['x-modelyard-deployment']} "
                      f"${float(r.headers['x-modelyard-cost-usd']):.6f}", flush=True)
        except OSError as e:
            print(f"  sample {i + 1}/{n} failed: {e}", flush=True)


@app.command()
def models(config: ConfigOpt = None) -> None:
    """List deployments with their prices and capabilities, and the model groups."""
    from rich.console import Console
    from rich.table import Table

    gw = _load_gateway(config, request_log=False)
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
) -> None:
    """Send one request through the gateway in-process; print the answer, model, cost, latency."""
    from .client import AsyncClient

    gw = _load_gateway(config, request_log=False)
    messages: list[dict[str, Any]] = ([{"role": "system", "content": system}] if system else [])
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}

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
                print(r.text or "\n".join(f"tool call {c.name}({c.arguments})" for c in r.tool_calls))
                print(f"\n[deployment {r.deployment} ({r.model}) · ${r.cost_usd:.6f} · "
                      f"tokens {r.usage.input_tokens}+{r.usage.output_tokens} · {r.latency_ms:.0f} ms]",
                      file=sys.stderr)
        finally:
            await client.aclose()

    try:
        asyncio.run(run())
    except ModelyardError as e:
        _fail(f"{e.type}: {e.message}", 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
