"""Learned routers: predict each model's quality on a prompt, route to the cheapest good enough.

Kinds (one module each): knn.py, classifier.py, mf.py (trained; saved as router files, base.py),
semantic.py (configured example utterances). strategy.py registers the gateway strategies `learned`
and `semantic`; importing this package does that and nothing heavy (numpy loads with a router).
"""

from __future__ import annotations

from . import strategy  # noqa: F401  (registers the `learned` and `semantic` strategies)
