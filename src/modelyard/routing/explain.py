"""Explain a routing decision without calling a model: the JSON that `modelyard route --json` and
`POST /v1/route/explain` return, and the human-readable form `modelyard route --explain` prints.

Shape (automated checks read it):
    {"model", "features": {"task", "complexity", "input_tokens", "capabilities": [...], ...},
     "candidates": [{"deployment", "eligible", "reason", "score"}, ...],   # group order
     "chosen", "strategy", "rule", "reason", "chain", ["error"]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..types import ChatRequest

if TYPE_CHECKING:
    from ..gateway import Gateway


def explain(gateway: Gateway, req: ChatRequest) -> dict[str, Any]:
    """Resolve `req.model` and run the router's decision on it; NotFound for unknown models."""
    route = gateway.resolve(req.model)
    return gateway.router.explain(route, req)


def render_text(d: dict[str, Any]) -> str:
    """The decision for people: features, every candidate's verdict and score, the winner and why."""
    f = d["features"]
    lines = [f"model      {d['model']}  (strategy: {d['strategy']}" + (f", rule: {d['rule']})" if d.get("rule")
                                                                       else ")")]
    caps = ", ".join(f.get("capabilities") or []) or "none"
    lines.append(f"task       {f.get('task')} (confidence {f.get('task_confidence', 0):.2f})   "
                 f"complexity {f.get('complexity', 0):.2f}   language {f.get('language', '?')}")
    lines.append(f"tokens     input {f.get('input_tokens')}   expected output {f.get('output_tokens')}   "
                 f"context {f.get('context_tokens')}   capabilities needed: {caps}")
    meta = {k: v for k, v in f.items() if k in ("user", "tier", "team", "tags", "task_value", "latency_budget_ms",
                                                "max_cost_usd", "min_quality", "optimize_for")}
    if meta:
        lines.append("metadata   " + "   ".join(f"{k}={v}" for k, v in meta.items()))
    lines.append("")
    width = max((len(c["deployment"]) for c in d["candidates"]), default=10)
    order = {name: i for i, name in enumerate(d.get("chain", []))}
    for c in sorted(d["candidates"], key=lambda c: order.get(c["deployment"], len(order))):
        rank = order.get(c["deployment"])
        mark = "→" if c["deployment"] == d.get("chosen") else " "
        verdict = f"#{rank + 1}" if rank is not None else "--"
        status = "ok " if c["eligible"] else "NO "
        lines.append(f"{mark} {verdict:>3} {c['deployment']:<{width}}  {status} score {c['score']:.3f}  {c['reason']}")
    lines.append("")
    if d.get("chosen"):
        lines.append(f"chosen     {d['chosen']}: {d['reason']}")
        if len(d.get("chain", [])) > 1:
            lines.append(f"fallbacks  {' → '.join(d['chain'][1:])}")
    else:
        lines.append(f"no deployment: {d.get('error', d['reason'])}")
    return "\n".join(lines)
