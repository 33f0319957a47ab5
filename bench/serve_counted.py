"""`modelyard serve` as bench/instructions_per_request.sh --http runs it under valgrind.

Under valgrind a request takes ~50× as long, so nearly every one outlives the 50 ms after which the
app starts watching a request for a client disconnect (server/watch.py) — and how many do moves with
the box's load. In the harness the requests this count stands for end in ~10 ms (p99 ~25 ms at
c=50), before any watch starts, so here the threshold is scaled by the same 50×: the count is then
that of the harness's requests, and steady.

    .venv/bin/python bench/serve_counted.py serve --config bench/gateway.yaml --port 14020
"""

import sys

from modelyard.cli import main
from modelyard.server import watch

SLOWDOWN = 50  # valgrind's slowdown of this workload, roughly

if __name__ == "__main__":
    watch.WATCH_AFTER_S *= SLOWDOWN
    sys.exit(main())
