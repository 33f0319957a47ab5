"""`modelyard demo`'s fleet and its background traffic: the simulated fleet with some failures injected,
and a bounded stream of requests over the groups (some streamed, a few to a name that does not exist)
so the dashboard shows routing, fallbacks, errors and cost moving within seconds.

The generator runs in daemon threads of the demo process and sends at most `rps` requests per second
with at most MAX_IN_FLIGHT at once; Ctrl-C stops the server and with it the process.
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

# failure knobs of the simulated deployments in the demo (fractions of calls): enough to see
# retries, fallbacks and a breaker open now and then, not enough to hide the rest
FAILURES: dict[str, dict[str, float]] = {
    "sim/frontier": {"failure_rate": 0.03},
    "sim/balanced": {"failure_rate": 0.10},
    "sim/fast": {"rate_limit_rate": 0.05, "failure_rate": 0.02},
    "sim/local": {"failure_rate": 0.15},
}
MAX_IN_FLIGHT = 8

PROMPTS = [
    "What is the capital of Australia?",
    "hi!",
    "Classify the sentiment of: 'the delivery was late again, I'm done with this shop'.",
    "Extract the dates from: 'we met on 3 May 2021 and again on 12 June 2022'.",
    "Write a Python function that checks whether a string is a palindrome, with tests.",
    "Review this code for bugs: def avg(xs): return sum(xs) / len(xs)",
    "Prove that the square root of 2 is irrational, step by step.",
    "A train leaves at 3pm going 60 km/h; another at 4pm going 90 km/h. When does the second catch up?",
    "Summarise the plot of Hamlet in three sentences.",
    "Translate 'good morning, how are you?' into Spanish.",
    "Design a distributed rate limiter for a global API gateway: compare token buckets in Redis with a "
    "sliding-window log, discuss clock skew, failure modes, and how to keep p99 latency low under load.",
    "Compare the economic consequences of the 1929 crash and the 2008 financial crisis, with the policy "
    "responses, their trade-offs and what economists still disagree about.",
]
# (model, weight): the groups mostly, a deployment by name, and a name that does not exist (a 404)
MODELS = [("auto", 10), ("fast", 3), ("smart", 2), ("cheap", 3), ("sim/balanced", 1), ("no-such-model", 0.3)]
USERS = ["ana", "bo", "chen", "dev", "eli"]


def demo_config(master_key_env: bool = False) -> dict[str, Any]:
    """The embedded sim-only config with the demo's failure rates (and the master key from the
    environment when MODELYARD_MASTER_KEY is set)."""
    from ..defaults import default_config_data

    data = default_config_data(sim_only=True)
    for name, knobs in FAILURES.items():
        if name in data["deployments"]:
            data["deployments"][name]["sim"] = dict(knobs)
    if master_key_env:
        data.setdefault("server", {})["master_key"] = "env:MODELYARD_MASTER_KEY"
    return data


def dashboard_line(base: str, master_key: str | None) -> str:
    if master_key:
        return f"  dashboard: {base}/ui#key={master_key}  (the key stays in that browser tab)"
    return f"  dashboard: {base}/ui  (no key needed: no master key is set and the demo listens on loopback)"


class Traffic:
    """Sends requests to `base` at about `rps` per second until the process ends."""

    def __init__(self, base: str, rps: float, master_key: str | None = None, seed: int | None = None) -> None:
        self.base = base
        self.rps = rps
        self.rand = random.Random(seed)
        self.headers = {"content-type": "application/json"}
        if master_key:
            self.headers["authorization"] = f"Bearer {master_key}"
        self.pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="demo-traffic")
        self.in_flight = threading.Semaphore(MAX_IN_FLIGHT)
        self.sent = self.ok = self.failed = 0
        names, weights = zip(*MODELS, strict=True)
        self.names, self.weights = list(names), list(weights)

    def start(self) -> None:
        threading.Thread(target=self.run, name="demo-traffic", daemon=True).start()

    def run(self) -> None:
        wait_until_up(self.base)
        while True:
            time.sleep(self.rand.expovariate(self.rps))
            if not self.in_flight.acquire(blocking=False):
                continue  # the server is slower than the generator: skip rather than queue
            self.pool.submit(self.one)

    def one(self) -> None:
        try:
            body = self.body()
            req = urllib.request.Request(self.base + "/v1/chat/completions", data=orjson.dumps(body),
                                         headers=self.headers)
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
            self.ok += 1
        except OSError:  # (HTTP errors included: the demo sends some on purpose)
            self.failed += 1
        finally:
            self.sent += 1
            self.in_flight.release()

    def body(self) -> dict[str, Any]:
        r = self.rand
        body: dict[str, Any] = {"model": r.choices(self.names, self.weights)[0],
                                "messages": [{"role": "user", "content": r.choice(PROMPTS)}],
                                "user": r.choice(USERS), "max_tokens": r.choice([64, 128, 256])}
        if r.random() < 0.3:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body


def wait_until_up(base: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/health", timeout=1).read()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def start(host: str, port: int, rps: float) -> Any:
    """The demo's gateway (sim fleet with failures); starts the traffic and prints the dashboard URL
    once the server answers."""
    from ..gateway import Gateway
    from ..loader import parse_config

    key = os.environ.get("MODELYARD_MASTER_KEY") or None
    gw = Gateway(parse_config(demo_config(master_key_env=key is not None), "<demo>"), source="<demo: sim fleet>")
    base = f"http://{host}:{port}"

    def announce() -> None:
        if wait_until_up(base):
            traffic = f"{rps:g} requests/s of background traffic" if rps > 0 else "no background traffic"
            print(f"{dashboard_line(base, key)}\n  sending {traffic}; Ctrl-C stops", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    if rps > 0:
        Traffic(base, rps, key).start()
    return gw
