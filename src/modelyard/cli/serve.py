"""`modelyard serve` and `modelyard demo`: run the gateway."""

from __future__ import annotations

import gc
import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError
from .app import ConfigOpt, app, fail, load_gateway

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..gateway import Gateway
    from ..server.app import App

# The cyclic GC's first generation runs when tracked allocations outnumber frees by this much.
# Python's 700 is crossed many times a second by the transient dicts of in-flight requests (a
# stream's parsed events), and each pass rescans every live young object for nothing: requests
# free their objects by reference counting. 10,000 made those passes rare (~5 µs/stream CPU);
# real reference cycles are still collected, after at most this many net allocations.
GC_THRESHOLDS = (10_000, 10, 10)


def _after_start() -> None:
    """Everything alive once the gateway has started lives until shutdown: keep the cyclic GC
    from rescanning it, and let its first generation run rarely."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serving_app(gw: Gateway, **kw: Any) -> App:
    """The app as `modelyard serve` runs it, with the process-wide tuning a library object must not
    do: the I/O threads' scheduling policy (`server.io_threads`, following the in-flight count in
    auto), which client calls http:// upstreams (`server.plain_http`) and the GC settings after
    start-up."""
    from ..providers import io_threads
    from ..providers.http import configure_plain_http
    from ..server.app import create_app
    from ..telemetry import tracing

    io_threads.configure(gw.config.server.io_threads)
    configure_plain_http(gw.config.server.plain_http)
    tracing.configure(gw.config.telemetry, source=gw.source)  # when telemetry.otlp_endpoint is set
    return create_app(gw, on_inflight=io_threads.follow, on_started=_after_start, **kw)


def worker_app() -> App:
    """Factory for each worker process of `modelyard serve --workers N`: config from MODELYARD_CONFIG."""
    from ..gateway import Gateway
    from ..server import protocol

    path = os.environ.get("MODELYARD_CONFIG")
    gw = Gateway.from_file(path) if path else Gateway.default(sim_only=os.environ.get("MODELYARD_SIM_ONLY") == "1")
    protocol.configure(protocol.limits_of(gw.config.server))
    _request_lines(gw, os.environ.get("MODELYARD_LOG_FORMAT", "text"), os.environ.get("MODELYARD_LOG_REQUESTS"))
    return serving_app(gw, master_key=os.environ.get("MODELYARD_MASTER_KEY") or None)


def _request_lines(gw: Gateway, fmt: str, requests: str | bool | None) -> None:
    """The process's log format, and one line per request (telemetry/logs.py) unless turned off
    (`telemetry.log_requests`, or --log-requests/--no-log-requests)."""
    from ..telemetry import logs

    logs.setup(fmt)
    on = gw.config.telemetry.log_requests if requests in (None, "") else requests in (True, "1")
    if on:
        gw.observers.append(logs.RequestLines(fmt).observe)


def server_options(server: ServerConfig, *, workers: bool = False) -> dict[str, Any]:
    """uvicorn's settings: the gateway's connection limits (server/protocol.py) on uvloop."""
    from ..server.protocol import uvicorn_options

    return {**uvicorn_options(server, workers=workers), "loop": "uvloop" if _has("uvloop") else "asyncio"}


def is_loopback(host: str) -> bool:
    """Whether `host` binds only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


def _run_server(config: str | None, host: str | None, port: int | None, workers: int | None,
                sim_only: bool, banner: bool, allow_unauthenticated: bool = False, log_format: str = "text",
                log_requests: bool | None = None, gateway: Any = None) -> None:
    import uvicorn

    if log_format not in ("text", "json"):
        fail(f"--log-format must be text or json, not {log_format!r}")
    gw = gateway or load_gateway(config, sim_only=sim_only)
    server = gw.config.server
    host = host or server.host
    port = port if port is not None else server.port
    workers = workers or server.workers
    try:
        app_obj = serving_app(gw)
    except ConfigError as e:
        fail(str(e))
    if app_obj.auth.master is None and not is_loopback(host) and not allow_unauthenticated:
        # anyone who reaches the address could spend the providers' keys configured here
        fail(f"refusing to serve on {host} without a master key: set server.master_key (e.g. "
             "env:MODELYARD_MASTER_KEY), bind 127.0.0.1, or pass --allow-unauthenticated on purpose")
    opts = {**server_options(server, workers=workers > 1), "log_config": None}  # logging: telemetry/logs.py
    if banner:
        _print_banner(gw, host, port)
    if workers > 1 and not gw.config.state.shared:  # docs/SCALING.md: what workers share
        print(f"note: {workers} workers with state: memory — rate limits, budget reservations and circuit "
              "breakers are per worker (a limit of N rpm admits up to N per worker); set state: redis://… "
              "to share them", flush=True)
    if workers > 1:
        # each worker process builds its own gateway from the same config (SO_REUSEPORT-style accept)
        if config:
            os.environ["MODELYARD_CONFIG"] = os.path.abspath(config)
        if sim_only:
            os.environ["MODELYARD_SIM_ONLY"] = "1"
        os.environ["MODELYARD_LOG_FORMAT"] = log_format
        os.environ["MODELYARD_LOG_REQUESTS"] = "" if log_requests is None else str(int(log_requests))
        from ..telemetry.logs import setup

        setup(log_format)
        # the workers' metrics go to files in a private directory, summed by whichever worker is scraped
        import shutil
        import tempfile

        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="modelyard-metrics-")
        try:
            uvicorn.run("modelyard.cli.serve:worker_app", factory=True, host=host, port=port, workers=workers,
                        **opts)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        _request_lines(gw, log_format, log_requests)
        uvicorn.run(app_obj, host=host, port=port, **opts)


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


LogFormatOpt = Annotated[str, typer.Option(help="log lines as text (the console) or json (one object per line)")]
LogRequestsOpt = Annotated[bool | None, typer.Option(
    help="one log line per request (default: telemetry.log_requests, on)", show_default=False)]


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address (default from config: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default from config: 4000)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (one event loop each)")] = None,
    allow_unauthenticated: Annotated[bool, typer.Option(
        help="serve on a non-loopback address without a master key (anyone who reaches it can use it)")] = False,
    log_format: LogFormatOpt = "text",
    log_requests: LogRequestsOpt = None,
) -> None:
    """Run the OpenAI- and Anthropic-compatible gateway."""
    _run_server(config, host, port, workers, sim_only=False, banner=True,
                allow_unauthenticated=allow_unauthenticated, log_format=log_format, log_requests=log_requests)


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 4000,
    traffic: Annotated[int, typer.Option(help="send this many sample requests once the server is up")] = 0,
    log_format: LogFormatOpt = "text",
    log_requests: LogRequestsOpt = None,
    rps: Annotated[float, typer.Option(help="background traffic, requests per second (0: none)")] = 2.0,
) -> None:
    """Serve the simulated fleet (no API keys needed, some failures injected) with background traffic,
    and print the dashboard's URL."""
    from . import demo_traffic

    if traffic:
        import threading

        threading.Thread(target=_sample_traffic, args=(f"http://{host}:{port}", traffic), daemon=True).start()
    gw = demo_traffic.start(host, port, min(max(rps, 0.0), 20.0))
    _run_server(None, host, port, 1, sim_only=True, banner=True, log_format=log_format, log_requests=log_requests,
                gateway=gw)


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
