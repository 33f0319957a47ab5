"""A bounded load test on loopback: 3 deployments, 2 of them failing half the time.

Through the real gateway server: ≥ 99.9 % of requests succeed, none takes longer than the request
deadline, no request makes more upstream calls than `max_attempts`, and the upstream saw exactly
the calls the gateway reported (no hidden retry storm). bench/faults_load.py runs the same
scenario bigger and prints the figures in docs/RELIABILITY.md.
"""

from __future__ import annotations

import pytest
from fault_upstream import FaultUpstream, flaky
from faultkit import config, run_load

from conftest import make_server

DEADLINE_S = 5.0
MAX_ATTEMPTS = 3


@pytest.mark.parametrize("breaker", [False, True], ids=["retries-only", "with-breakers"])
def test_two_of_three_failing_half_the_time(tmp_path, breaker) -> None:
    with FaultUpstream(seed=11) as up:
        up.script("a", then=flaky(0.5))
        up.script("b", then=flaky(0.5))
        res = {"timeout_s": DEADLINE_S, "retry": {"max_attempts": MAX_ATTEMPTS},
               "breaker": {"enabled": breaker, "consecutive_failures": 3, "cooldown_s": 0.2, "min_requests": 1000}}
        cfg = config(up, {"a": "openai", "b": "openai", "c": "anthropic"},
                     {"g": {"deployments": ["a", "b", "c"]}}, resilience=res)
        with make_server(tmp_path, cfg) as s:
            report = run_load(s.url, n=600, concurrency=30)
        calls = sum(up.hits.values())
    assert report.success_rate >= 0.999, report.statuses
    # the gateway answers within its deadline; the client's clock also counts its own queueing and
    # loopback on a loaded 2-core box (seen: 5.002 s), hence the margin
    assert report.latencies[-1] < DEADLINE_S + 0.5
    assert max(report.attempts) <= MAX_ATTEMPTS and min(report.attempts) >= 1
    assert calls == report.total_attempts  # every upstream call is one the gateway counted
    if not breaker:  # a and b are always tried first: about 1.75 calls per request
        assert 1.5 < report.total_attempts / report.n < 2.0
    else:  # breakers keep most traffic away from the failing pair
        assert report.total_attempts / report.n < 1.5
