"""`resilience.caps.max_calls` bounds every mode's fan-out: a request whose mode would make more
upstream calls is refused with a 400 before any sub-call, and logged on its parent row."""

from __future__ import annotations

from typing import Any

import pytest
from modekit import gateway, logged, req, sim

from modelyard.errors import BadRequest

MODELS = [f"m{i}" for i in range(1, 6)]
DEPS = {m: sim("sim/fast", answers={"spam": "spam"}) for m in MODELS}


def caps(max_calls: int) -> dict[str, Any]:
    return {"resilience": {"caps": {"max_calls": max_calls}}}


@pytest.mark.parametrize(("mode", "opts", "calls"), [
    ("race", {}, 5), ("all", {}, 5), ("vote", {}, 5), ("fuse", {}, 6), ("judge", {}, 6),
    ("judge", {"swap": True}, 7),
])
async def test_each_modes_fan_out_is_capped(tmp_path, mode, opts, calls) -> None:
    gw = gateway(tmp_path, DEPS, **caps(calls - 1))
    async with gw:
        with pytest.raises(BadRequest) as e:
            await gw.chat(req("spam?", mode=mode, models=MODELS, **opts), request_id="req_cap")
        log = await logged(gw, "req_cap")
    assert e.value.status == 400 and e.value.param == "modelyard.models"
    assert f"mode '{mode}' would make {calls} upstream calls" in e.value.message
    assert f"at most {calls - 1} per request (resilience.caps.max_calls)" in e.value.message
    assert list(log) == ["req_cap"] and log["req_cap"]["status"] == 400  # no sub-call was made


@pytest.mark.parametrize(("mode", "opts", "calls"), [("vote", {}, 5), ("judge", {"swap": True}, 7)])
async def test_fan_out_at_the_cap_runs(tmp_path, mode, opts, calls) -> None:
    gw = gateway(tmp_path, DEPS, **caps(calls))
    async with gw:
        r = await gw.chat(req("spam?", mode=mode, models=MODELS, **opts), request_id="req_ok")
    assert len(r.modelyard["calls"]) == calls


async def test_candidates_from_a_group_count_too(tmp_path) -> None:
    gw = gateway(tmp_path, DEPS, groups={"wide": {"deployments": MODELS}}, **caps(4))
    async with gw:
        with pytest.raises(BadRequest, match="mode 'race' would make 5 upstream calls"):
            await gw.chat(req("spam?", model="wide", mode="race"))


async def test_the_default_cap_refuses_a_judge_fanned_out_to_18_calls(tmp_path) -> None:
    gw = gateway(tmp_path, DEPS)
    async with gw:
        with pytest.raises(BadRequest) as e:
            await gw.chat(req("spam?", mode="judge", swap=True, models=(MODELS * 4)[:16]))
    assert "would make 18 upstream calls (16 candidates + 2 judge calls)" in e.value.message
    assert "at most 10 per request" in e.value.message
