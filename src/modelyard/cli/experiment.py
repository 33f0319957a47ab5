"""`modelyard experiment report [NAME]`: an experiment's per-variant numbers and verdict, from the
request log named by a config (`--config`) or from a running gateway (`--url`, master key)."""

from __future__ import annotations

import os
import re
import time
from typing import Annotated, Any

import typer

from ..errors import ConfigError
from ..store.location import locate
from .app import ConfigOpt, app, config_message, fail

experiment = typer.Typer(no_args_is_help=True, help="A/B tests on model groups (docs/OBSERVABILITY.md).")
app.add_typer(experiment, name="experiment")

_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """`24h`, `7d`, `30m`, `90s` before now, or a Unix time."""
    if value is None:
        return None
    m = _SPAN.fullmatch(value.strip())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _SECONDS[m.group(2)]
    try:
        return float(value)
    except ValueError:
        fail(f"--since expects a span such as 24h, 7d, 30m or a Unix time, got {value!r}")


@experiment.command()
def report(
    name: Annotated[str | None, typer.Argument(help="the experiment (default: every configured one)")] = None,
    config: ConfigOpt = None,
    url: Annotated[str | None, typer.Option(help="ask a running gateway, e.g. http://127.0.0.1:4000")] = None,
    key: Annotated[str | None, typer.Option(help="with --url: the master key (default: $MODELYARD_MASTER_KEY)")
                   ] = None,
    since: Annotated[str | None, typer.Option(help="only requests since: 24h, 7d, 30m or a Unix time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Per variant: requests, success rate, latency p50/p95, cost per request, feedback or judge score,
    with confidence intervals, tests against control, and a verdict."""
    import json

    if url and config:
        fail("give --config (read the request log it names) or --url (ask a running gateway), not both")
    start = parse_since(since)
    reports = _remote(url, name, key, start) if url else _local(config, name, start)
    if as_json:
        typer.echo(json.dumps(reports[0] if name else {"experiments": reports}, indent=2))
        return
    if not reports:
        typer.echo("no experiments configured (add an experiments: section; docs/OBSERVABILITY.md)")
    for r in reports:
        _print(r)


def _local(config: str | None, name: str | None, since: float | None) -> list[dict[str, Any]]:
    from ..defaults import default_config
    from ..experiments import service
    from ..experiments.data import LogUnreadable
    from ..loader import load_config

    path = config or os.environ.get("MODELYARD_CONFIG")
    try:
        cfg = load_config(path) if path else default_config()
    except ConfigError as e:
        fail(config_message(e))
    log = locate(cfg)  # the request log's file, or Postgres (store/location.py)
    try:
        if name:
            return [service.report(cfg, log, name, since=since)]
        return service.reports(cfg, log, since=since)
    except service.UnknownExperiment as e:
        fail(f"{path or '<embedded defaults>'}: {e}")
    except LogUnreadable as e:
        fail(str(e))


def _remote(url: str, name: str | None, key: str | None, since: float | None) -> list[dict[str, Any]]:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    target = url.rstrip("/") + "/admin/experiments" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")
    if since is not None:
        target += f"?since={since:.3f}"
    req = urllib.request.Request(target)
    key = key or os.environ.get("MODELYARD_MASTER_KEY")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except Exception:
            message = e.reason
        fail(f"{url}: {e.code}: {message}")
    except (urllib.error.URLError, OSError) as e:
        fail(f"cannot reach {url}: {getattr(e, 'reason', e)}")
    return [doc] if name else list(doc["experiments"])


def _fmt(value: float | None, ci: list[float] | None, spec: str, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    text = format(value * scale, spec)
    if ci:
        text += f" [{format(ci[0] * scale, spec)}, {format(ci[1] * scale, spec)}]"
    return text


def _print(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    level = f"{r['level'] * 100:.4g}%"
    t = Table(title=f"experiment {r['name']}: group {r['group']}, unit {r['unit']}, metric {r['metric']}"
                    f"{'' if r['enabled'] else ' (stopped)'}", caption=f"[brackets]: {level} confidence intervals")
    score = "feedback" if r["metric"] != "judge" else "judge"
    for col in ("variant", "share", "requests", "success %", "p50 ms", "p95 ms", "$ / request", score):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for v in r["variants"]:
        t.add_row(v["name"], f"{v['share_pct']:g}%", str(v["requests"]),
                  _fmt(v["success_rate"], v["success_rate_ci"], ".1f", 100),
                  _fmt(v["latency_p50_ms"], v["latency_p50_ms_ci"], ".0f"),
                  _fmt(v["latency_p95_ms"], v["latency_p95_ms_ci"], ".0f"),
                  _fmt(v["cost_per_request_usd"], v["cost_per_request_usd_ci"], ".6f"),
                  _fmt(v[f"{score}_mean"], v[f"{score}_mean_ci"], ".3f") + f" (n={v[f'{score}_count']})")
    console = Console()
    console.print(t)
    if r["unassigned"]:
        console.print(f"{r['unassigned']} requests carried no {r['unit']}: served by control, not compared")
    console.print(f"verdict: {r['verdict']}", highlight=False)
