"""The simulated fleet: in-process deployments that behave like real ones, without keys or network.

`make demo` and the test suite run the whole pipeline on it, so it is realistic where the gateway
can tell the difference and deterministic everywhere else:

- answers depend only on (model, messages, request options): the same request gets the same text,
  tool calls and usage, streamed or not; different tiers phrase things differently;
- usage is what `tokens.py` counts for the prompt and the reply, priced by the deployment's card;
- latency follows the card (time to first token, then tokens per second) with jitter, unless zero
  latency is asked for (`zero_latency=True`, `sim.zero_latency`, or MODELYARD_SIM_ZERO_LATENCY=1);
- failures (503) and rate limits (429, Retry-After 1 s) happen at the configured rates, drawn from
  the provider's own seeded `random.Random`, always before the first chunk;
- it honours the card: images need `vision`, tools need `tools`, JSON modes need `json`, and a
  prompt larger than the context window is refused — so routing mistakes show up as real errors.

How good an answer is follows the deployment's quality (`sim.quality`, else the card's prior for
the task): a "good" answer to a question with one right answer (arithmetic, multiple choice,
labels) is the one every good model agrees on; a poor one is drawn per model, and may be wrong.
"""

from __future__ import annotations

from .profile import SIM_FLEET, SIM_TIERS
from .provider import SimProvider

__all__ = ["SIM_FLEET", "SIM_TIERS", "SimProvider"]
