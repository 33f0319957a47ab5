"""What a running batch shows: a rich progress bar (lines, rate, ETA, running cost, concurrency) on
a terminal, a status line every few seconds otherwise, and the summary table at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .engine import BatchStats

PLAIN_EVERY_S = 5.0


def _finished(st: BatchStats) -> int:
    return st.done + st.failed


def _rate(st: BatchStats) -> float:
    return _finished(st) / st.elapsed_s if st.elapsed_s > 0 else 0.0


@contextlib.asynccontextmanager
async def shown(st: BatchStats, console: Console) -> AsyncIterator[None]:
    """Show `st` while the body runs."""
    if console.is_terminal:
        progress = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.1f} lines/s"), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("${task.fields[cost]:.4f}"), TextColumn("conc {task.fields[conc]}"),
            TextColumn("[red]{task.fields[failed]}"), console=console, refresh_per_second=5)
        task = progress.add_task("batch", total=st.total or None, rate=0.0, cost=0.0, conc=0, failed="")

        async def refresh() -> None:
            while True:
                progress.update(task, completed=_finished(st), total=max(st.total, _finished(st)) or None,
                                rate=_rate(st), cost=st.cost_usd, conc=f"{st.inflight}/{int(st.limit)}",
                                failed=f"{st.failed} failed" if st.failed else "")
                await asyncio.sleep(0.2)

        with progress:
            refresher = asyncio.create_task(refresh())
            try:
                yield
            finally:
                refresher.cancel()
                progress.update(task, completed=_finished(st), rate=_rate(st), cost=st.cost_usd)
        return

    async def plain() -> None:
        while True:
            await asyncio.sleep(PLAIN_EVERY_S)
            console.print(f"batch: {_finished(st)}/{st.total} lines, {_rate(st):.1f} lines/s, "
                          f"${st.cost_usd:.4f}, {st.failed} failed, concurrency {st.inflight}/{int(st.limit)}",
                          highlight=False)

    printer = asyncio.create_task(plain())
    try:
        yield
    finally:
        printer.cancel()


def summary(st: BatchStats, output: str, errors: str) -> Table:
    """The end-of-job table: lines, models, cost, latency, time."""
    t = Table(title="batch summary", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("done", f"{st.done}  → {output}")
    t.add_row("failed", f"{st.failed}" + (f"  → {errors}" if st.failed else ""))
    t.add_row("malformed", f"{st.malformed}" + (f" ({st.duplicates} duplicate custom_ids)" if st.duplicates else "")
              + (f"  → {errors}" if st.malformed else ""))
    t.add_row("skipped", f"{st.skipped} (already in the output)")
    if st.left:
        why = "--max-cost reached" if st.stopped_for_cost else "stopped"
        t.add_row("left", f"{st.left} not run ({why}); run the same command again to continue")
    if st.rate_limited:
        t.add_row("rate limited", f"{st.rate_limited} × 429 (lines re-queued; concurrency now {int(st.limit)})")
    models = ", ".join(f"{d} × {n}" for d, n in st.deployments.most_common()) or "-"
    t.add_row("models", models)
    t.add_row("cost", f"${st.cost_usd:.6f}")
    p50, p95 = st.percentile(0.5), st.percentile(0.95)
    t.add_row("latency", "-" if p50 is None else f"p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    t.add_row("elapsed", f"{st.elapsed_s:.1f} s ({_rate(st):.1f} lines/s)")
    return t
