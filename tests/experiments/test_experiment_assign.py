"""Assignment: a deterministic, sticky, process-independent hash of (experiment, unit) → variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from expkit import config

from modelyard.experiments.assign import Experiment, bucket, unit_value
from modelyard.gateway import Gateway
from modelyard.types import Caller, ChatRequest, Message

SRC = str(Path(__file__).resolve().parents[2] / "src")


def experiment(**overrides: object) -> Experiment:
    gw = Gateway(config(overrides), request_log=False)
    return gw.experiments["smart"]


def request(user: str | None = None, **kw: object) -> ChatRequest:
    return ChatRequest(model="smart", messages=[Message("user", "hi")], user=user, **kw)  # type: ignore[arg-type]


def test_bucket_values_are_fixed() -> None:
    # blake2b(experiment \0 unit), 8 bytes big-endian, mod 10000: the same on every machine, forever
    assert [bucket("cheaper", u) for u in ("a", "b", "c", "user-42")] == [6461, 9911, 6847, 524]
    assert bucket("cheaper", "a") != bucket("other", "a")  # the experiment's name reshuffles units
    assert all(0 <= bucket("x", str(i)) < 10_000 for i in range(1000))


@pytest.mark.parametrize("split", [{"treatment": 10}, {"treatment": 50}, {"treatment": 2.5}])
def test_split_within_one_percent_over_10k_units(split: dict[str, float]) -> None:
    exp = experiment(split=split)
    counts = Counter(exp.variant_for(f"user-{i}").name for i in range(10_000))  # type: ignore[union-attr]
    share = counts["treatment"] / 10_000 * 100
    assert abs(share - split["treatment"]) <= 1.0, counts
    assert counts["control"] + counts["treatment"] == 10_000


def test_three_variants_and_unenrolled_rest() -> None:
    exp = experiment(variants={"control": {}, "a": {"deployments": ["sim/fast"]}, "b": {"deployments": ["sim/local"]}},
                     split={"control": 20, "a": 20, "b": 30})
    counts = Counter(getattr(exp.variant_for(f"u{i}"), "name", None) for i in range(10_000))
    for name, pct in (("control", 20), ("a", 20), ("b", 30), (None, 30)):
        assert abs(counts[name] / 100 - pct) <= 1.0, counts


def test_no_split_means_equal_shares() -> None:
    exp = experiment(split={}, variants={"control": {}, "a": {"deployments": ["sim/fast"]},
                                         "b": {"deployments": ["sim/local"]}})
    counts = Counter(exp.variant_for(f"u{i}").name for i in range(10_000))  # type: ignore[union-attr]
    assert sum(counts.values()) == 10_000  # the rounding remainder goes to control: no unit left out
    assert all(abs(c / 100 - 100 / 3) <= 1.0 for c in counts.values()), counts


def test_sticky_per_unit_and_tagged() -> None:
    exp = experiment()
    seen: dict[str, set[str]] = {}
    for _ in range(3):
        for i in range(200):
            req = request(f"user-{i}")
            route = exp.assign(exp.control.route, req, f"req-{i}")
            seen.setdefault(f"user-{i}", set()).add(req.experiment or "")
            assert route is exp.variants[req.experiment.partition("=")[2]].route  # type: ignore[union-attr]
    assert all(len(tags) == 1 for tags in seen.values())
    assert {next(iter(t)) for t in seen.values()} == {"cheaper=control", "cheaper=treatment"}


def test_raising_a_share_keeps_the_units_it_had() -> None:
    ten, twenty = experiment(split={"treatment": 10}), experiment(split={"treatment": 20})
    had = {i for i in range(5000) if ten.variant_for(str(i)).name == "treatment"}  # type: ignore[union-attr]
    assert had and all(twenty.variant_for(str(i)).name == "treatment" for i in had)  # type: ignore[union-attr]


def test_stable_across_processes() -> None:
    exp = experiment(split={"treatment": 30})
    units = [f"user-{i}" for i in range(300)]
    here = [exp.variant_for(u).name for u in units]  # type: ignore[union-attr]
    code = ("import json, sys\n"
            "sys.path.insert(0, 'tests/experiments')\n"
            "from expkit import config\n"
            "from modelyard.gateway import Gateway\n"
            "exp = Gateway(config({'split': {'treatment': 30}}), request_log=False).experiments['smart']\n"
            f"print(json.dumps([exp.variant_for(u).name for u in {units!r}]))\n")
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONHASHSEED": "12345"}  # another hash seed: not Python's hash
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    assert json.loads(out.stdout) == here


def test_unit_values() -> None:
    assert unit_value("user", request("alice"), "r1") == "alice"
    assert unit_value("user", request(metadata={"user": "bob"}), "r1") == "bob"
    assert unit_value("user", request(caller=Caller(key_id="k1", user="carol")), "r1") == "carol"
    assert unit_value("user", request(), "r1") is None
    assert unit_value("key", request(caller=Caller(key_id="k1")), "r1") == "k1"
    assert unit_value("key", request(), "r1") == "master"
    assert unit_value("request", request("alice"), "r1") == "r1"


def test_missing_unit_goes_to_control_and_says_so() -> None:
    exp = experiment(split={"treatment": 100})
    req = request()
    assert exp.assign(exp.control.route, req, "r1") is exp.control.route
    assert req.experiment == "cheaper=control; no user"
    req = request("someone")
    exp.assign(exp.control.route, req, "r2")
    assert req.experiment == "cheaper=treatment"


def test_key_and_request_units() -> None:
    by_key = experiment(unit="key")
    tags = set()
    for _ in range(3):
        req = request(caller=Caller(key_id="key-7"))
        by_key.assign(by_key.control.route, req, os.urandom(4).hex())
        tags.add(req.experiment)
    assert len(tags) == 1  # one key, one variant, whatever the request
    by_request = experiment(unit="request")
    tags = set()
    for i in range(200):
        req = request("same-user")
        by_request.assign(by_request.control.route, req, f"req-{i}")
        tags.add(req.experiment)
    assert tags == {"cheaper=control", "cheaper=treatment"}


def test_variant_routes_are_built_once_and_override_the_group() -> None:
    gw = Gateway(config({"variants": {"control": {}, "treatment": {"deployments": ["sim/fast", "sim/local"],
                                                                   "strategy": "cheapest"}}}), request_log=False)
    exp = gw.experiments["smart"]
    assert exp.control.route is gw.routes["smart"]  # an empty variant is the group itself
    t = exp.variants["treatment"].route
    assert t.name == "smart" and t.strategy == "cheapest"
    assert [d.name for d in t.deployments] == ["sim/fast", "sim/local"]
    assert t.plan_key in gw.router.plans and gw.router.plans[t.plan_key].strategy_name == "cheapest"
    chain, _ = gw.plan(t, request("x"))
    assert chain[0].name == "sim/local"  # the cheapest of the variant's deployments


def test_disabled_experiment_assigns_nothing() -> None:
    gw = Gateway(config({"enabled": False}), request_log=False)
    assert gw.experiments == {}
