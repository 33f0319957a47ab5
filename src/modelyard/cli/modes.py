"""How `modelyard chat --mode ...` prints what a multi-model request did (no commands here)."""

from __future__ import annotations

from typing import Any


def _short(text: Any, limit: int = 70) -> str:
    s = " ".join(str(text).split()) if text is not None else "-"
    return s if len(s) <= limit else s[: limit - 1] + "…"


def summary_lines(meta: dict[str, Any]) -> list[str]:
    """A few human lines per mode: the decision, then one line per sub-call."""
    mode = meta.get("mode")
    out: list[str] = []
    if mode == "vote":
        out.append(f"vote: {meta['outcome']} · answer {meta['answer']!r} · agreement {meta['agreement']}"
                   f"/{meta['min_agreement']} needed · confidence {meta['confidence']:.2f}")
        out += [f"  {m}: {a!r}" for m, a in meta.get("votes", {}).items()]
    elif mode == "judge":
        out.append(f"judge {meta['judge']}: winner {meta['winner']} · {_short(meta.get('reason'), 100)}")
        if meta.get("consistent") is not None:
            out.append(f"  verdict consistent when reversed: {meta['consistent']}")
    elif mode == "race":
        out.append(f"race: winner {meta['winner']} · cancelled {', '.join(meta['cancelled']) or 'none'}")
    elif mode == "fuse":
        out.append(f"fuse: {'fused by ' + meta['aggregator'] if meta['fused'] else 'not fused'}")
    elif mode == "all":
        out += [f"  [{c['index']}] {c['model']}: {_short(meta['answers'][c['model']])}" for c in meta["choices"]]
    elif mode == "pipeline":
        out.append(f"pipeline {meta['pipeline']}:")
        out += [f"  {s['name']:<14} {s['model'] or '-':<14} {s['status']:<9} {s['input_tokens']}+"
                f"{s['output_tokens']} tok  ${s['cost_usd']:.6f}  {s['latency_ms']:.0f} ms  {_short(s['output'], 50)}"
                for s in meta.get("steps", [])]
    for label, err in (meta.get("errors") or {}).items():
        out.append(f"  {label} failed: {err['type']}: {_short(err['message'], 90)}")
    calls = meta.get("calls", [])
    out.append(f"{len(calls)} calls · total ${meta.get('cost_usd', 0.0):.6f}")
    return out
