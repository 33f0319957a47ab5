"""`modelyard keys create|list|show|revoke|rotate` and `modelyard spend`: against a running server
(`--url`, master key from MODELYARD_MASTER_KEY) or the local database of a config (`--config`)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated, Any

import typer

from ..errors import ModelyardError
from ..store.location import locate
from .app import ConfigOpt, app, fail

keys_app = typer.Typer(help="Virtual keys: create, list, show, revoke, rotate.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
UrlOpt = Annotated[str | None, typer.Option("--url", help="a running server; master key from MODELYARD_MASTER_KEY")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _call(url: str | None, config: str | None, method: str, path: str, body: Any = None) -> Any:
    if url:
        import httpx

        key = os.environ.get("MODELYARD_MASTER_KEY", "")
        r = httpx.request(method, url.rstrip("/") + path, json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"} if key else {})
        if r.status_code >= 400:
            fail(f"{r.status_code}: {r.json().get('error', {}).get('message', r.text)}")
        return r.json()
    return asyncio.run(_local(config, method, path, body))


async def _local(config: str | None, method: str, path: str, body: Any) -> Any:
    from ..accounting.admin import Admin
    from ..accounting.keys import KeyRing, declared_keys
    from ..config import Config
    from ..loader import load_config

    cfg = load_config(config) if config else Config()
    ring = KeyRing(locate(cfg), [k for k, _ in declared_keys(cfg, config or "<config>")])
    ring.load_now()
    known = {*cfg.deployments, *cfg.model_groups, *(f"pipeline/{p}" for p in cfg.pipelines)} if config else None
    a = Admin(ring, known)
    parts = path.strip("/").split("/")[2:]
    try:
        if method == "POST" and not parts:
            return await a.create_key(body)
        if method == "GET" and not parts:
            return a.list_keys(include_revoked=bool(body))
        if method == "GET":
            return a.get_key(parts[0])
        if method == "DELETE":
            return await a.revoke_key(parts[0])
        return await a.rotate_key(parts[0])
    except ModelyardError as e:
        fail(e.message)


# a key's `log_content`: keep its prompts and answers, never keep them, or follow its group / the server
LOG_CONTENT = {True: "on", False: "off", None: "default"}


def _show(obj: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    rows = obj["data"] if obj.get("object") == "list" else [obj]
    table = Table("id", "name", "status", "team", "user", "budget", "rpm", "models", "log content", "hint")
    for k in rows:
        budget = f"{k['budget_usd']:g}/{k['budget_period']}" if k.get("budget_usd") else "-"
        table.add_row(k["id"], k.get("name") or "", k["status"], k.get("team") or "", k.get("user") or "", budget,
                      str(k.get("rpm") or "-"), ",".join(k["models"]) if k.get("models") else "all",
                      LOG_CONTENT[k.get("log_content")], k["key_hint"])
    Console().print(table)
    if "key" in obj:
        typer.echo(f"key (shown once; store it now): {obj['key']}")


@keys_app.command("create")
def create(url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
           name: Annotated[str | None, typer.Option()] = None, team: Annotated[str | None, typer.Option()] = None,
           user: Annotated[str | None, typer.Option()] = None,
           budget: Annotated[float | None, typer.Option("--budget", help="USD per period")] = None,
           period: Annotated[str | None, typer.Option("--period", help="daily|weekly|monthly|total")] = None,
           rpm: Annotated[int | None, typer.Option()] = None, tpm: Annotated[int | None, typer.Option()] = None,
           models: Annotated[str | None, typer.Option(help="comma-separated groups/deployments")] = None,
           expires: Annotated[str | None, typer.Option(help="ISO time or span ahead, e.g. 30d")] = None,
           log_content: Annotated[bool | None, typer.Option(
               "--log-content/--no-log-content", help="keep (or never keep) this key's prompts and answers in the "
               "request log; unset: its model group's setting, else the server's default")] = None) -> None:
    """Create a key; the key is printed once."""
    body = {k: v for k, v in {"name": name, "team": team, "user": user, "budget_usd": budget, "budget_period": period,
                              "rpm": rpm, "tpm": tpm, "expires_at": expires, "log_content": log_content,
                              "models": [m.strip() for m in models.split(",")] if models else None}.items()
            if v is not None}
    _show(_call(url, config, "POST", "/admin/keys", body), as_json)


@keys_app.command("list")
def list_keys(url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
              all_: Annotated[bool, typer.Option("--all", help="revoked keys too")] = False) -> None:
    """List keys."""
    _show(_call(url, config, "GET", "/admin/keys" + ("?include_revoked=true" if all_ and url else ""), all_ or None),
          as_json)


def _one(method: str, suffix: str = "") -> Any:
    def cmd(key_id: Annotated[str, typer.Argument()], url: UrlOpt = None, config: ConfigOpt = None,
            as_json: JsonOpt = False) -> None:
        _show(_call(url, config, method, f"/admin/keys/{key_id}{suffix}"), as_json)
    return cmd


keys_app.command("show", help="Show one key.")(_one("GET"))
keys_app.command("revoke", help="Revoke a key (refused with 401 from now on).")(_one("DELETE"))
keys_app.command("rotate", help="A new secret for a key; the old one stops working.")(_one("POST", "/rotate"))


@app.command()
def spend(by: Annotated[str, typer.Option(help="key|team|user|model|deployment")] = "key",
          since: Annotated[str, typer.Option(help="ISO date/time or span, e.g. 7d")] = "30d",
          until: Annotated[str | None, typer.Option()] = None, url: UrlOpt = None, config: ConfigOpt = None,
          as_json: JsonOpt = False) -> None:
    """Spend grouped by key, team, user, model or deployment."""
    q = {"by": by, "since": since, **({"until": until} if until else {})}
    if url:
        from urllib.parse import urlencode

        body = _call(url, None, "GET", "/admin/spend?" + urlencode(q))
    else:
        from ..config import Config
        from ..loader import load_config
        from ..server.admin_api import spend_report

        cfg = load_config(config) if config else Config()
        try:
            body = spend_report(locate(cfg), q)
        except ModelyardError as e:
            fail(e.message)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(by, "requests", "errors", "cost USD", "input", "output",
                  title=f"spend {body['since']} → {body['until']}")
    for g in [*body["groups"], {**body["total"], by: "TOTAL"}]:
        table.add_row(str(g[by]), str(g["requests"]), str(g["errors"]), f"{g['cost_usd']:.6f}",
                      str(g["input_tokens"]), str(g["output_tokens"]))
    Console().print(table)
