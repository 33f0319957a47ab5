"""The `modelyard` command. Each group of subcommands lives in its own module and registers on `app`.

Config errors print `file: field: problem` and exit 2, without a traceback.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer

from ..errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="modelyard: an LLM gateway that sends every request to the right model.")

ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (default: embedded defaults)")]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_gateway(config: str | None, *, sim_only: bool = False, request_log: bool | None = None) -> Any:
    from ..gateway import Gateway

    try:
        if config:
            return Gateway.from_file(config, request_log=request_log)
        return Gateway.default(sim_only=sim_only, request_log=request_log)
    except ConfigError as e:
        fail(config_message(e))


def config_message(e: ConfigError) -> str:
    """One problem: its line; several: how many, then one indented line each."""
    if len(e.problems) == 1:
        return str(e)
    lines = str(e).splitlines()
    return f"{e.file} has {len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)


def parse_pairs(items: list[str], option: str) -> dict[str, Any]:
    """`k=v` pairs from a repeated option; values are JSON when they parse (numbers, lists, true),
    strings otherwise."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"{option} expects key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out
