"""One call to one route: `single` (retries along the fallback chain), `hedge` (a second call when the
first is slow) and `attempt` (one upstream call under its timeouts, accounted in health). The
multi-model modes, which make many such calls, are in `modes/`."""
