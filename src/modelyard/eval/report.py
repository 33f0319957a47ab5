"""Rendering of a pair evaluation: rich tables for the terminal, a PNG cost-quality curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from .pair import SHARES, PairEval


def _pct(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "—" if x is None or math.isnan(x) else format(x, fmt)


def _usd(x: float | None) -> str:
    return "—" if x is None else f"${x:.6f}"


def summary_table(ev: PairEval, router_name: str) -> Table:
    t = Table(title=f"{len(ev.ids)} prompts — strong: {ev.strong}, weak: {ev.weak}")
    for col in ("policy", "APGR", "CPT(50%)", "CPT(80%)", "AUC", "quality", "strong calls", "cost/prompt"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    refs = ev.references()
    rows = [(router_name, ev.results[router_name]), *refs.items()]
    for name, m in rows:
        t.add_row(name, _num(m.apgr, ".3f"), _pct(m.cpt50), _pct(m.cpt80), _num(m.auc), "", "", "",
                  style="bold" if name == router_name else None)
    for which in ("strong", "weak"):
        p = ev.always(which)
        t.add_row(f"always-{which}", "", "", "", "", _num(p.quality), _pct(p.strong_share), _usd(p.cost))
    return t


def shares_table(ev: PairEval, router_name: str, scores: np.ndarray) -> Table:
    t = Table(title="quality (and cost) at each strong-call share")
    t.add_column("strong calls", justify="right")
    t.add_column(f"{router_name} quality", justify="right")
    t.add_column("random quality", justify="right")
    t.add_column("oracle quality", justify="right")
    if ev.has_cost:
        t.add_column(f"{router_name} cost/prompt", justify="right")
    oracle = ev.at_shares(ev.q_strong - ev.q_weak)
    for share, p, o in zip(SHARES, ev.at_shares(scores), oracle, strict=True):
        row = [_pct(share), _num(p.quality), _num(ev.random_at(share).quality), _num(o.quality)]
        if ev.has_cost:
            row.append(_usd(p.cost))
        t.add_row(*row)
    return t


def print_report(ev: PairEval, router_name: str, scores: np.ndarray, console: Console | None = None) -> None:
    import sys

    console = console or Console(width=None if sys.stdout.isatty() else 140)
    console.print(summary_table(ev, router_name))
    console.print(shares_table(ev, router_name, scores))
    console.print("APGR: area under the quality-vs-strong-share curve (10 score-quantile thresholds), as a "
                  "fraction of the weak→strong gap; random = 0.5. CPT(x%): strong-call share needed to "
                  "recover x% of the gap.", style="dim")


def plot_curves(ev: PairEval, path: str | Path) -> None:
    """The cost-quality curves of every evaluated router and the references, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    curves = {**ev.results, **ev.references()}
    for name, m in curves.items():
        pts = sorted(m.points, key=lambda p: p.strong_share)
        ax.plot([100 * p.strong_share for p in pts], [p.quality for p in pts], marker=".",
                linestyle="--" if name in ("random", "oracle") else "-", label=f"{name} (APGR {m.apgr:.3f})")
    ax.axhline(ev.always("strong").quality, color="red", linestyle=":", label=f"always {ev.strong}")
    ax.axhline(ev.always("weak").quality, color="grey", linestyle=":", label=f"always {ev.weak}")
    ax.set_xlabel("strong-model calls (%)")
    ax.set_ylabel("quality")
    ax.set_title("quality vs strong-model calls")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
