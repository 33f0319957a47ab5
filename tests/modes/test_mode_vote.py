"""Vote: normalised answers, majority with min_agreement, confidence, explicit ties and shortfalls."""

from __future__ import annotations

import pytest
from modekit import gateway, logged, req, sim

from modelyard.errors import BadRequest, NotFound, Unavailable

SPAM = "Is this spam? 'You won a free prize, click now'"
NO_RETRY = {"retry": {"max_attempts": 1}}


def voters(*replies: str | None) -> dict[str, dict]:
    """Deployments v1..vn answering SPAM with the given replies (None: the deployment fails)."""
    return {f"v{i}": sim("sim/fast", failure_rate=1.0) if r is None else sim("sim/fast", answers={"spam": r})
            for i, r in enumerate(replies, 1)}


async def vote(tmp_path, replies: tuple[str | None, ...], rid: str = "req_v", **opts):
    deps = voters(*replies)
    gw = gateway(tmp_path, deps, resilience=NO_RETRY)
    async with gw:
        r = await gw.chat(req(SPAM, mode="vote", models=list(deps), **opts), request_id=rid)
        log = await logged(gw, rid)
    return r, log


async def test_majority_with_label_normalisation(tmp_path) -> None:
    r, log = await vote(tmp_path, ("Spam. Classic prize scam.", "**SPAM**", "Not spam."),
                        normalize="label", labels=["spam", "not spam"])
    m = r.modelyard
    assert m["outcome"] == "agreed" and m["answer"] == "spam"
    assert m["agreement"] == 2 and m["min_agreement"] == 2 and m["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    assert m["votes"] == {"v1": "spam", "v2": "spam", "v3": "not spam"}
    assert r.text == "Spam. Classic prize scam."  # the first agreeing model's own words
    assert r.decision is not None and r.decision.strategy == "vote"
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for rid, row in log.items() if rid != "req_v"))
    assert r.cost_usd > 0 and log["req_v"]["cost_usd"] == 0


async def test_fold_is_the_default_normaliser(tmp_path) -> None:
    r, _ = await vote(tmp_path, ("  Paris. ", "paris", "PARIS!"))
    assert r.modelyard["outcome"] == "agreed" and r.modelyard["answer"] == "paris"
    assert r.modelyard["confidence"] == 1.0 and r.modelyard["normalize"] == "fold"


async def test_tie_is_an_explicit_outcome_with_no_answer(tmp_path) -> None:
    r, _ = await vote(tmp_path, ("yes", "no", "Yes.", "No"))
    m = r.modelyard
    assert m["outcome"] == "tie" and m["answer"] is None and sorted(m["tied"]) == ["no", "yes"]
    assert m["agreement"] == 2 and m["confidence"] == 0.5
    assert r.choices[0].message.content is None and r.text == ""


async def test_no_agreement_when_the_top_answer_is_short_of_min_agreement(tmp_path) -> None:
    r, _ = await vote(tmp_path, ("red", "green", "red", "blue"), min_agreement=3)
    m = r.modelyard
    assert m["outcome"] == "no_agreement" and m["answer"] is None
    assert m["agreement"] == 2 and m["tally"] == {"red": 2, "green": 1, "blue": 1}


async def test_too_few_successes_reports_each_failure(tmp_path) -> None:
    r, log = await vote(tmp_path, ("spam", None, None), rid="req_v2", min_agreement=2)
    m = r.modelyard
    assert m["outcome"] == "too_few_successes" and m["answer"] is None and m["votes"] == {"v1": "spam"}
    assert set(m["errors"]) == {"v2", "v3"} and m["errors"]["v2"]["status"] == 503
    assert sorted(row["status"] for rid, row in log.items() if rid != "req_v2") == [200, 503, 503]


async def test_partial_failure_still_agrees(tmp_path) -> None:
    r, _ = await vote(tmp_path, ("spam", None, "Spam"))
    assert r.modelyard["outcome"] == "agreed" and r.modelyard["confidence"] == 1.0
    assert list(r.modelyard["errors"]) == ["v2"]


async def test_no_success_at_all_is_an_error_naming_every_candidate(tmp_path) -> None:
    with pytest.raises(Unavailable) as info:
        await vote(tmp_path, (None, None))
    assert "v1:" in info.value.message and "v2:" in info.value.message


@pytest.mark.parametrize("normalize, replies, opts, expected", [
    ("number", ("12*7 = 84.\n\nSo the answer is **84**.", "I get 84.", "85"), {}, "84"),
    ("choice", ("The answer is B. Jupiter", "B) Jupiter", "(c)"), {}, "B"),
    ("json", ('{"label": "Urgent"}', '```json\n{"label": "urgent", "score": 3}\n```', '{"label": "later"}'),
     {"field": "label"}, "urgent"),
    ("exact", ("Yes", "Yes", "yes"), {}, "Yes"),
])
async def test_normalisers(tmp_path, normalize, replies, opts, expected) -> None:
    r, _ = await vote(tmp_path, replies, normalize=normalize, **opts)
    assert r.modelyard["answer"] == expected and r.modelyard["agreement"] == 2


async def test_repeating_a_model_samples_it_with_distinct_seeds(tmp_path) -> None:
    gw = gateway(tmp_path, {"solo": sim("sim/balanced")})
    async with gw:
        r = await gw.chat(req("Tell me a fun fact about octopuses.", mode="vote", models=["solo"] * 3))
    assert list(r.modelyard["votes"]) == ["solo", "solo#2", "solo#3"]
    texts = {c["model"]: c for c in r.modelyard["calls"]}
    assert len(texts) == 3


async def test_defaults_use_the_requested_group(tmp_path) -> None:
    gw = gateway(tmp_path, {"a": sim(answers={"x": "A"}), "b": sim(answers={"x": "a"}), "c": sim(answers={"x": "b"})},
                 {"trio": {"deployments": ["a", "b", "c"]}})
    async with gw:
        r = await gw.chat(req("x?", model="trio", mode="vote"))
        assert r.modelyard["min_agreement"] == 2 and r.modelyard["answer"] == "a"
        with pytest.raises(BadRequest, match="needs at least 2 models"):
            await gw.chat(req("x?", model="a", mode="vote"))


async def test_bad_options_are_400s_naming_the_field(tmp_path) -> None:
    gw = gateway(tmp_path, {"a": sim(), "b": sim()})
    async with gw:
        with pytest.raises(BadRequest) as info:
            await gw.chat(req(mode="vote", models=["a", "b"], min_agreement=3), request_id="req_bad")
        assert info.value.param == "modelyard.min_agreement"
        with pytest.raises(BadRequest, match=r"modelyard\.mode: unknown mode 'vot'"):
            await gw.chat(req(mode="vot", models=["a", "b"]))
        with pytest.raises(BadRequest, match=r"modelyard\.normalize"):
            await gw.chat(req(mode="vote", models=["a", "b"], normalize="fuzzy"))
        with pytest.raises(BadRequest, match=r"modelyard\.field: required"):
            await gw.chat(req(mode="vote", models=["a", "b"], normalize="json"))
        with pytest.raises(NotFound) as nf:
            await gw.chat(req(mode="vote", models=["a", "nope"]))
        assert nf.value.param == "modelyard.models[1]"
        log = await logged(gw, "req_bad")
    assert log["req_bad"]["status"] == 400 and len(log) == 1  # refused before any sub-call
