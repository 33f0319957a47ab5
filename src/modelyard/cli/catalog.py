"""`modelyard catalog import FILE -o catalog.yaml`: a LiteLLM-style JSON price map
(`model_prices_and_context_window.json`) as a catalog file a config lists under `catalog_files:`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, fail

catalog_app = typer.Typer(help="Model cards: import price lists.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command(name="import")
def import_(
    file: Annotated[Path, typer.Argument(help="LiteLLM-style JSON price map")],
    out: Annotated[Path, typer.Option("-o", "--out", help="catalog YAML to write")] = Path("catalog.yaml"),
) -> None:
    """Convert a JSON price map into a catalog file (list it in your config's `catalog_files:`)."""
    import orjson
    import yaml

    from ..catalog.importer import from_litellm

    try:
        data = orjson.loads(file.read_bytes())
    except OSError as e:
        fail(f"{file}: cannot read: {e.strerror}")
    except orjson.JSONDecodeError as e:
        fail(f"{file}: not JSON: {e}")
    if not isinstance(data, dict):
        fail(f"{file}: expected a JSON object of model name -> prices")
    cards, skipped = from_litellm(data)
    if not cards:
        fail(f"{file}: no chat model with input and output prices")
    header = f"# imported from {file.name} by `modelyard catalog import`: USD per 1M tokens\n"
    out.write_text(header + yaml.safe_dump({"catalog": cards}, sort_keys=True), encoding="utf-8")
    typer.echo(f"wrote {len(cards)} cards to {out} ({len(skipped)} entries skipped: not chat models or unpriced)")
