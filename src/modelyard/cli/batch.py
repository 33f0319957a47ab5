"""`modelyard batch`: run a JSONL file of chat requests through the gateway (docs/BATCH.md)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from .app import ConfigOpt, app, fail, load_gateway

if TYPE_CHECKING:
    from ..batch.engine import Backend


def errors_path_for(output: str) -> str:
    """results.jsonl → results.errors.jsonl."""
    stem = output[:-len(".jsonl")] if output.endswith(".jsonl") else output
    return stem + ".errors.jsonl"


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


@app.command()
def batch(
    input: Annotated[str, typer.Argument(help="JSONL: one chat request per line (plain or OpenAI batch format)")],
    output: Annotated[str, typer.Option("--output", "-o", help="results, OpenAI batch output format (appended)")],
    model: Annotated[str, typer.Option(help="model or group for lines that name none")] = "auto",
    concurrency: Annotated[int, typer.Option(min=1, help="most requests in flight (429s lower it)")] = 64,
    max_cost: Annotated[float | None, typer.Option(min=0, help="stop launching lines past this spend (USD)")] = None,
    config: ConfigOpt = None,
    url: Annotated[str | None, typer.Option(help="send through a running gateway instead (http://host:port)")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="MODELYARD_API_KEY", show_envvar=True,
        help="key for --url (default: MODELYARD_MASTER_KEY)")] = None,
    errors: Annotated[str | None, typer.Option(help="failed and malformed lines (default OUTPUT.errors.jsonl)")] = None,
    fsync_every: Annotated[int, typer.Option(min=1, help="fsync the output every N lines (1: every line)")] = 256,
) -> None:
    """Run every line of INPUT through the gateway; re-running the same command resumes."""
    from rich.console import Console

    from ..batch import progress, resume
    from ..batch.output import Appender, LazyAppender
    from ..batch.reader import read_items

    if config and url:
        fail("--config and --url exclude each other: --url sends to a gateway that has its own config")
    if not os.path.isfile(input):
        fail(f"{input}: no such input file")
    if os.path.abspath(input) == os.path.abspath(output):
        fail("the output file must not be the input file")
    errors = errors or errors_path_for(output)
    backend: Backend
    if url:
        from ..batch.http_backend import HttpBackend

        backend = HttpBackend(url, api_key=api_key or os.environ.get("MODELYARD_MASTER_KEY"), concurrency=concurrency)
    else:
        from ..server.batch_backend import GatewayBackend

        backend = GatewayBackend(load_gateway(config))
    console = Console(stderr=True)
    finished = resume.scan(output)
    if finished.torn_bytes:
        console.print(f"{output}: dropped a torn last line ({finished.torn_bytes} bytes); it runs again")
    if finished.unreadable:
        console.print(f"{output}: {finished.unreadable} lines are not results; their requests run again")
    if finished.ids:
        console.print(f"resuming: {len(finished.ids)} lines already in {output}")
    total = max(0, _count_lines(input) - len(finished.ids))
    if os.path.exists(errors):
        os.truncate(errors, 0)  # it describes this run; the lines that failed before run again

    async def run() -> int:
        from ..batch.engine import BatchEngine

        out, err = Appender(output, sync_every=fsync_every), LazyAppender(errors)
        engine = BatchEngine(backend, out, err, concurrency=concurrency, max_cost=max_cost)
        engine.stats.total = total
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, _interrupt, engine, loop)
        try:
            await backend.start()
        except Exception as e:  # e.g. nothing answers at --url: say so once, not per line
            await backend.close()
            await out.close()
            console.print(f"error: {e}", highlight=False)
            return 2
        try:
            async with progress.shown(engine.stats, console):
                st = await engine.run(read_items(input, model), finished.ids)
        finally:
            await backend.close()
            await out.close()
            await err.close()
        Console().print(progress.summary(st, output, errors))
        if st.stopped_for_cost:
            console.print(f"--max-cost ${max_cost:g} reached: {st.left} lines left; "
                          "raise it and run the same command to continue")
        return 0 if not (st.failed or st.malformed or st.left) else 1

    code = asyncio.run(run())
    raise typer.Exit(code)


def _interrupt(engine: object, loop: asyncio.AbstractEventLoop) -> None:
    """First Ctrl-C: stop launching, let the lines in flight finish and be written; the second one
    stops at once (nothing finished is lost either way)."""
    engine.cancel()  # type: ignore[attr-defined]
    loop.remove_signal_handler(signal.SIGINT)
    print("\nstopping: finishing the lines in flight (Ctrl-C again to stop now)", flush=True)
