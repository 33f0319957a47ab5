"""`modelyard stats`: the dashboard's figures in the terminal.

From a running gateway (`--url`, the admin stats API with the master key) or straight from a config's
request log (`--config`, no server needed; breaker states exist only in a running server).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any

import orjson
import typer

from .app import ConfigOpt, app, fail

DEFAULT_URL = "http://127.0.0.1:4000"
SPEND_BY = ("group", "deployment", "key")


def fetch_stats(url: str, key: str | None, window: str) -> dict[str, Any]:
    """Every stats endpoint of the gateway at `url`, in one dict."""
    base = url.rstrip("/")
    headers = {"authorization": f"Bearer {key}"} if key else {}

    def get(path: str, **params: str) -> Any:
        q = urllib.parse.urlencode(params)
        req = urllib.request.Request(f"{base}/admin/stats/{path}?{q}", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return orjson.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                message = orjson.loads(e.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = e.reason
            if e.code == 401:
                fail(f"{base} refused the key: {message} (pass --key or set MODELYARD_MASTER_KEY)")
            fail(f"{base}/admin/stats/{path}: HTTP {e.code}: {message}")
        except OSError as e:
            fail(f"cannot reach {base}: {getattr(e, 'reason', e)} (is the gateway running? or use --config FILE "
                 "to read its request log)")

    return {"summary": get("summary", window=window), "models": get("models", window=window),
            "routing": get("routing", window=window),
            "spend": {by: get("spend", window=window, by=by) for by in SPEND_BY},
            "breakers": get("breakers")}


def stats_from_log(config: str, window: str) -> dict[str, Any]:
    """The same figures computed from the request log that `config` names."""
    from ..errors import BadRequest, ConfigError
    from ..loader import load_config
    from ..server.stats_api import parse_duration
    from ..store import stats as log_stats
    from ..store import stats_view as view
    from ..store.location import locate
    from .app import config_message

    try:
        cfg = load_config(config)
    except ConfigError as e:
        fail(config_message(e))
    try:
        window_s = parse_duration(window, "--window")
    except BadRequest as e:
        fail(e.message)
    path = locate(cfg)  # the request log's file, or Postgres (store/location.py)
    t1 = time.time()
    t0 = t1 - window_s
    try:
        r, cut = log_stats.load(path, t0, t1, max(1.0, window_s / 120))
    except log_stats.LogUnavailable as e:
        fail(str(e))
    meta = {"source": "log", "window_s": window_s, **({"note": "window cut at the newest rows"} if cut else {})}
    return {"summary": {**meta, **view.summary(r, t0, t1)}, "models": view.models(r, t0, t1),
            "routing": view.routing(r, t0, t1), "spend": {by: view.spend(r, t0, t1, by) for by in SPEND_BY},
            "breakers": None}


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _usd(v: float | None) -> str:
    return "–" if v is None else f"${v:,.2f}" if v >= 1 else f"${v:.6f}"


def render(data: dict[str, Any], where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = data["summary"]
    console.print(f"[bold]modelyard stats[/] · {where} · last {s['window_s']:g} s ({s['source']})")
    if s.get("note"):
        console.print(f"[yellow]{s['note']}[/]")
    t = Table(show_header=True, header_style="bold")
    for col in ("requests/s", "requests", "errors", "fallbacks", "cache hits", "p50", "p95", "TTFT p50", "cost"):
        t.add_column(col, justify="right")
    t.add_row(f"{s['requests_per_s']:.2f}", f"{s['requests']:,}", _pct(s["error_rate"]), _pct(s["fallback_rate"]),
              _pct(s["cache_hit_rate"]), _ms(s["latency_p50_ms"]), _ms(s["latency_p95_ms"]), _ms(s["ttft_p50_ms"]),
              _usd(s["cost_usd"]))
    console.print(t)

    t = Table(title="deployments", header_style="bold")
    for col in ("deployment", "requests", "error rate", "p50", "p95", "TTFT p50", "cost"):
        t.add_column(col, justify="left" if col == "deployment" else "right")
    for d in data["models"]["deployments"]:
        t.add_row(d["deployment"] or "(not routed)", f"{d['requests']:,}", _pct(d["error_rate"]),
                  _ms(d["latency_p50_ms"]), _ms(d["latency_p95_ms"]), _ms(d["ttft_p50_ms"]), _usd(d["cost_usd"]))
    console.print(t)

    t = Table(title="routing mix", header_style="bold")
    for col in ("group", "strategy", "requests", "deployments", "why (top rules/reasons)"):
        t.add_column(col, justify="right" if col == "requests" else "left")
    for g in data["routing"]["groups"]:
        mix = ", ".join(f"{m['deployment']} {m['share'] * 100:.0f}%" for m in g["mix"])
        why = "; ".join(f"{r['share'] * 100:.0f}% " + (f"rule {r['rule']}" if r["rule"] else r["example_reason"] or "-")
                        for r in g["reasons"][:3])
        t.add_row(g["group"], g.get("configured_strategy") or g.get("strategy") or "", f"{g['requests']:,}", mix, why)
    console.print(t)

    for by in SPEND_BY:
        sp = data["spend"][by]
        t = Table(title=f"spend by {by} (total {_usd(sp['total_usd'])})", header_style="bold")
        t.add_column(by)
        t.add_column("requests", justify="right")
        t.add_column("cost", justify="right")
        t.add_column("share", justify="right")
        for r in sp["rows"][:15]:
            share = r["cost_usd"] / sp["total_usd"] if sp["total_usd"] else None
            t.add_row(str(r["name"]), f"{r['requests']:,}", _usd(r["cost_usd"]), _pct(share))
        console.print(t)

    if data.get("breakers"):
        t = Table(title="breakers", header_style="bold")
        for col in ("deployment", "state", "success", "in flight", "latency (ewma)", "opened"):
            t.add_column(col, justify="left" if col in ("deployment", "state") else "right")
        colour = {"closed": "green", "half_open": "yellow", "open": "red"}
        for b in data["breakers"]["deployments"]:
            t.add_row(b["deployment"], f"[{colour.get(b['state'], 'white')}]{b['state']}[/]", _pct(b["success_rate"]),
                      str(b["inflight"]), _ms(b["ewma_latency_ms"]), f"{b['opens']}×")
        console.print(t)


@app.command()
def stats(
    url: Annotated[str | None, typer.Option(
        help=f"a running gateway (default: $MODELYARD_URL or {DEFAULT_URL})")] = None,
    config: ConfigOpt = None,
    key: Annotated[str | None, typer.Option(help="master key (default: $MODELYARD_MASTER_KEY)")] = None,
    window: Annotated[str, typer.Option(help="how far back: 30s, 15m, 2h, 7d")] = "15m",
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Requests, latency, errors, fallbacks, cost, routing mix and breakers: what the dashboard shows."""
    if url and config:
        fail("give --url (a running gateway) or --config (read its request log), not both")
    if config:
        data, where = stats_from_log(config, window), f"request log of {config}"
    else:
        base = url or os.environ.get("MODELYARD_URL") or DEFAULT_URL
        data, where = fetch_stats(base, key or os.environ.get("MODELYARD_MASTER_KEY"), window), base
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        render(data, where)
