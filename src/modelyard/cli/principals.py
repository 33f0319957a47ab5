"""`modelyard teams create|list|show|update|delete` and `modelyard users …`: teams and users with
their own budgets and rate limits, against a running server (`--url`, master key from
MODELYARD_MASTER_KEY; /admin/teams, /admin/users) or the local database of a config (`--config`),
as `modelyard keys` does."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from ..errors import ModelyardError
from ..store.location import locate
from .app import ConfigOpt, app, fail, parse_pairs
from .keys import JsonOpt, UrlOpt
from .keys import _call as _http

BudgetOpt = Annotated[float | None, typer.Option("--budget", help="USD per period")]
PeriodOpt = Annotated[str | None, typer.Option("--period", help="daily|weekly|monthly|total (default monthly)")]
SoftOpt = Annotated[float | None, typer.Option("--soft", help="soft limit, % of the budget (alert, cheaper models)")]
RpmOpt = Annotated[int | None, typer.Option("--rpm", help="requests per minute, all its keys together")]
TpmOpt = Annotated[int | None, typer.Option("--tpm", help="tokens per minute, all its keys together")]
MetaOpt = Annotated[list[str] | None, typer.Option("--meta", help="metadata key=value (repeatable)")]
ClearOpt = Annotated[list[str] | None, typer.Option(
    "--clear", help="a field to clear: budget_usd, budget_period, soft_budget_pct, rpm, tpm, metadata (repeatable)")]

NameArg = Annotated[str, typer.Argument(help="the team's or user's name (keys name it with --team / --user)")]
_CLEARABLE = ("budget_usd", "budget_period", "soft_budget_pct", "rpm", "tpm", "metadata")


def _call(kind: str, url: str | None, config: str | None, method: str, name: str | None = None,
          body: Any = None) -> Any:
    path = f"/admin/{kind}s" + (f"/{name}" if name is not None else "")
    if url:
        from urllib.parse import quote

        return _http(url, None, method, path if name is None else f"/admin/{kind}s/{quote(name, safe='')}", body)
    return asyncio.run(_local(kind, config, method, name, body))


async def _local(kind: str, config: str | None, method: str, name: str | None, body: Any) -> Any:
    from ..accounting.admin import Admin
    from ..accounting.keys import KeyRing, declared_keys
    from ..config import Config
    from ..loader import load_config

    cfg = load_config(config) if config else Config()
    ring = KeyRing(locate(cfg), [k for k, _ in declared_keys(cfg, config or "<config>")])
    ring.load_now()
    a = Admin(ring)
    try:
        if method == "POST":
            return await a.create_principal(kind, body)
        if method == "GET":
            return a.list_principals(kind) if name is None else a.get_principal(kind, name)
        if method == "PATCH":
            assert name is not None
            return await a.update_principal(kind, name, body)
        assert name is not None
        return await a.delete_principal(kind, name)
    except ModelyardError as e:
        fail(e.message)


def _body(budget: float | None, period: str | None, soft: float | None, rpm: int | None, tpm: int | None,
          meta: list[str] | None) -> dict[str, Any]:
    return {k: v for k, v in {"budget_usd": budget, "budget_period": period, "soft_budget_pct": soft, "rpm": rpm,
                              "tpm": tpm, "metadata": parse_pairs(meta, "--meta") if meta else None}.items()
            if v is not None}


def _show(kind: str, obj: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
        return
    if obj.get("deleted"):
        typer.echo(f"{kind} {obj['name']} deleted")
        return
    from rich.console import Console
    from rich.table import Table

    rows = obj["data"] if obj.get("object") == "list" else [obj]
    table = Table(kind, "budget", "soft %", "rpm", "tpm", "active keys", "metadata", "created")
    for p in rows:
        budget = f"{p['budget_usd']:g}/{p['budget_period'] or 'monthly'}" if p.get("budget_usd") is not None else "-"
        table.add_row(p["name"], budget, _dash(p.get("soft_budget_pct")), _dash(p.get("rpm")), _dash(p.get("tpm")),
                      str(p.get("active_keys", 0)), json.dumps(p["metadata"]) if p.get("metadata") else "",
                      p.get("created_at") or "")
    Console().print(table)


def _dash(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _group(kind: str) -> typer.Typer:
    """The five commands for `kind` ("team" or "user")."""
    g = typer.Typer(help=f"{kind.capitalize()}s with their own budgets and rate limits: create, list, show, update, "
                         "delete.", no_args_is_help=True)
    @g.command("create")
    def create(name: NameArg, url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
               budget: BudgetOpt = None, period: PeriodOpt = None, soft: SoftOpt = None, rpm: RpmOpt = None,
               tpm: TpmOpt = None, meta: MetaOpt = None) -> None:
        _show(kind, _call(kind, url, config, "POST", None,
                          {"name": name, **_body(budget, period, soft, rpm, tpm, meta)}), as_json)

    create.__doc__ = f"Create a {kind}; its budget and limits apply to every key that names it."

    @g.command("list")
    def list_(url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
        _show(kind, _call(kind, url, config, "GET"), as_json)

    list_.__doc__ = f"List {kind}s."

    @g.command("show")
    def show(name: NameArg, url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
        _show(kind, _call(kind, url, config, "GET", name), as_json)

    show.__doc__ = f"Show one {kind}."

    @g.command("update")
    def update(name: NameArg, url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
               budget: BudgetOpt = None, period: PeriodOpt = None, soft: SoftOpt = None, rpm: RpmOpt = None,
               tpm: TpmOpt = None, meta: MetaOpt = None, clear: ClearOpt = None) -> None:
        body: dict[str, Any] = _body(budget, period, soft, rpm, tpm, meta)
        for f in clear or ():
            if f not in _CLEARABLE:
                fail(f"--clear takes one of {', '.join(_CLEARABLE)}, not {f!r}")
            if f in body:
                fail(f"--clear {f} and a new value for it: choose one")
            body[f] = None
        if not body:
            fail("nothing to change: give --budget, --period, --soft, --rpm, --tpm, --meta or --clear")
        _show(kind, _call(kind, url, config, "PATCH", name, body), as_json)

    update.__doc__ = f"Change a {kind}'s budget, limits or metadata (only what is given)."

    @g.command("delete")
    def delete(name: NameArg, url: UrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
        _show(kind, _call(kind, url, config, "DELETE", name), as_json)

    delete.__doc__ = f"Delete a {kind} (refused while active keys name it)."
    return g


app.add_typer(_group("team"), name="teams")
app.add_typer(_group("user"), name="users")
