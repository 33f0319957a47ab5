"""`modelyard route "prompt" --explain`: where would this request go, and why (no model is called)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..errors import ModelyardError
from .app import ConfigOpt, app, fail, load_gateway, parse_pairs


@app.command()
def route(
    prompt: Annotated[str, typer.Argument(help="the user message to route")],
    config: ConfigOpt = None,
    model: Annotated[str, typer.Option("--model", help="model group (or deployment) to route")] = "auto",
    metadata: Annotated[list[str] | None, typer.Option(
        "--metadata", "-M", help="routing hint key=value (tier, tags, task_value, latency_budget_ms, "
                                 "max_cost_usd, min_quality, optimize_for, user, task, ...); repeatable")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="features, every candidate's verdict and score, "
                                                            "the winner and why")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as one JSON object")] = False,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="max_tokens of the request")] = None,
    image: Annotated[list[str] | None, typer.Option(help="attach an image URL (needs vision); repeatable")] = None,
    tool: Annotated[list[str] | None, typer.Option(help="declare a tool by name (needs tools); repeatable")] = None,
    json_mode: Annotated[bool, typer.Option("--json-mode", help="ask for a JSON response (needs json)")] = False,
) -> None:
    """Show where a request would be routed; with --explain, why. Without --config: the default fleet."""
    from ..routing.explain import explain as explain_decision
    from ..routing.explain import render_text
    from ..types import ChatRequest, ImagePart, Message, TextPart, Tool

    content: str | list[Any] = prompt
    if image:
        content = [TextPart(prompt), *(ImagePart(url) for url in image)]
    messages = ([Message("system", system)] if system else []) + [Message("user", content)]
    req = ChatRequest(model=model, messages=messages, max_tokens=max_tokens,
                      tools=[Tool(name=t) for t in tool] if tool else None,
                      response_format={"type": "json_object"} if json_mode else None,
                      metadata=parse_pairs(metadata or [], "--metadata"))
    gw = load_gateway(config, sim_only=True, request_log=False)
    try:
        d = explain_decision(gw, req)
    except ModelyardError as e:
        fail(e.message)
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False))
    elif explain:
        typer.echo(render_text(d))
    elif d.get("chosen"):
        rule = f", rule {d['rule']}" if d.get("rule") else ""
        typer.echo(f"{d['chosen']}  ({d['strategy']}{rule}; task {d['features']['task']}, "
                   f"complexity {d['features']['complexity']:.2f})")
    if not d.get("chosen"):
        if not as_json and not explain:
            typer.echo(f"error: {d.get('error')}", err=True)
        raise typer.Exit(1)
