"""The task classifier on prompts real people wrote (routing/data/real_prompts.jsonl, test split:
never trained or tuned on): accuracy at the figures docs/ROUTING.md claims, calibration within
bounds, `chat` below the confidence threshold, never code/math for humanities, role-play or writing
prompts, and the `minilm` choice wired through config and the pre-routing step."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from routekit import FLEET

from modelyard.errors import ConfigError
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.routing.classify import UNSURE, default_model
from modelyard.routing.features import TASKS
from modelyard.routing.task_eval import (
    CLEAR_TYPES,
    ENLARGED_SOURCES,
    LOOKUP_HEAVY,
    evaluate,
    fit_temperature,
    load_real,
    real_training_examples,
    reliability,
)
from modelyard.routing.task_eval import (
    test_splits as held_out_splits,
)
from modelyard.types import ChatRequest, Message

# docs/ROUTING.md: the shipped models' clear-type accuracy on the first test split (the sources the
# split began with, kept for comparison), on the enlarged one (the five sources of the second round)
# and on the test rows of the Dolly-15k sample, a split of its own (36 clear prompts: wider margin)
CHEAP_ACCURACY = {"first": 0.681, "enlarged": 0.695, "dolly15k": 0.861}
MINILM_ACCURACY = {"first": 0.751, "enlarged": 0.768, "dolly15k": 0.861}
MARGIN = {"first": 0.03, "enlarged": 0.03, "dolly15k": 0.08}

# Held out: written for this test, never in any training set. A code or math label would send them
# to a code or math model; the review found today's classifier doing that to humanities prompts.
HUMANITIES_ROLEPLAY_WRITING = [
    "What themes does Toni Morrison explore in Beloved, and how does the ghost shape them?",
    "Why did the Roman Republic collapse into an empire?",
    "Explain the significance of the Treaty of Westphalia for modern state sovereignty.",
    "How did the printing press change religious authority in sixteenth-century Europe?",
    "Compare Kant's and Mill's views on lying.",
    "What is the role of the chorus in Greek tragedy?",
    "Interpret the final stanza of Robert Frost's 'Stopping by Woods on a Snowy Evening'.",
    "Was the French Revolution a success? Argue both sides.",
    "Discuss how colonialism shaped the borders of modern Africa.",
    "What does Plato's allegory of the cave say about education?",
    "How did jazz influence the Harlem Renaissance?",
    "Why is Hamlet so hesitant to take revenge?",
    "What does the green light symbolize in The Great Gatsby?",
    "Summarise the causes of the First World War for a history essay introduction.",
    "Pretend you are a pirate captain and greet your new crew.",
    "You are a medieval innkeeper. A weary traveller walks in; describe what you say and do.",
    "Let's role-play: you're my strict French teacher and I'm late to class again.",
    "Act as Sherlock Holmes and deduce something about me from my muddy boots.",
    "Stay in character as a grumpy dragon guarding its treasure while I try to bargain.",
    "Write a heartfelt letter to my grandmother thanking her for teaching me to bake.",
    "Draft a wedding speech for my sister that is funny but not embarrassing.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Compose a sonnet about the first snowfall of winter.",
    "Rewrite this paragraph so it sounds more formal: we kinda messed up the launch and people were mad.",
    "Write a LinkedIn post announcing that I started a new job as a nurse.",
    "Write a product description for a handmade ceramic mug.",
    "Give me a catchy title for my travel blog post about Lisbon.",
    "Write an opening line for a mystery novel set in Venice.",
    "Describe the smell of a bakery at dawn in three vivid sentences.",
    "Write a eulogy for a beloved family dog.",
]


def minilm():
    pytest.importorskip("onnxruntime")
    from modelyard.embed.backends import EmbeddingError
    from modelyard.routing.task_minilm import minilm_model

    try:
        return minilm_model()
    except EmbeddingError as e:
        pytest.skip(f"MiniLM not installed: {e}")


def test_real_prompt_set_is_split_by_hash_and_test_prompts_never_train() -> None:
    rows = load_real()
    assert len(rows) >= 1600 and len({r["text"] for r in rows}) == len(rows)
    assert {r["source"] for r in rows} == {*ENLARGED_SOURCES, "dolly15k"}
    for r in rows:  # the split follows from the prompt alone (bench/label_real_prompts.py)
        cut = {"seed": 77, "dolly15k": 77, "user": 256}.get(r["source"], 128)
        assert r["split"] == ("test" if hashlib.sha256(r["text"].encode()).digest()[0] < cut else "train")
        assert r["task"] in TASKS and (not r["clear"] or r["task"] in CLEAR_TYPES)
    test = {r["text"] for r in rows if r["split"] == "test"}
    train = {r["text"] for r in rows if r["split"] == "train"}
    assert not test & train and sum(r["clear"] for r in rows if r["split"] == "test") >= 260
    splits = held_out_splits()  # later sources never add rows to the first or the enlarged split
    assert [sum(r["clear"] for r in splits[s]) for s in ("first", "enlarged", "dolly15k")] == [185, 233, 36]
    assert {r["source"] for r in splits["dolly15k"]} == {"dolly15k"}


def test_training_examples_leave_out_the_look_up_heavy_sources_look_ups() -> None:
    examples = real_training_examples()
    train = load_real("train")
    dropped = [r for r in train if r["source"] in LOOKUP_HEAVY and r["task"] == "simple_qa"]
    assert dropped and len(examples) == len(train) - len(dropped)
    assert not {r["text"] for r in dropped} & {t for t, _ in examples}
    assert any(t == "simple_qa" for _, t in examples)  # the other sources' look-ups still train


@pytest.mark.parametrize("split", ["first", "enlarged"])
def test_cheap_model_accuracy_on_the_real_test_split(split: str) -> None:
    report = evaluate(default_model(), held_out_splits()[split])
    assert report["n"] >= 150
    assert report["accuracy"] >= CHEAP_ACCURACY[split] - MARGIN[split]
    # every clear type is recognised on some of its prompts (the small classes are a few prompts each)
    assert all(pc["right"] > 0 for pc in report["per_class"].values())


def test_cheap_model_accuracy_on_the_dolly15k_test_split() -> None:
    report = evaluate(default_model(), held_out_splits()["dolly15k"])
    assert report["n"] >= 25
    assert report["accuracy"] >= CHEAP_ACCURACY["dolly15k"] - MARGIN["dolly15k"]
    for task in ("classification", "extraction"):  # the sample's two large clear types
        assert report["per_class"][task]["right"] >= 0.75 * report["per_class"][task]["n"]


def test_cheap_model_is_calibrated_within_bounds() -> None:
    report = evaluate(default_model(), load_real("test"))
    assert report["ece"] <= 0.15
    # confident answers are mostly right, unsure ones mostly not: confidence ranks correctness
    rows = report["reliability"]
    high = [b for b in rows if float(b["bin"][:3]) >= 0.8]
    low = [b for b in rows if float(b["bin"][:3]) < 0.4]
    acc = lambda bs: sum(b["accuracy"] * b["n"] for b in bs) / sum(b["n"] for b in bs)  # noqa: E731
    assert acc(high) >= 0.7 and acc(low) <= 0.5


def test_unsure_answers_chat_below_the_threshold() -> None:
    model = default_model()
    assert 0.2 <= model.threshold <= 0.5
    seen_unsure = 0
    for r in load_real():
        probs = model.probabilities(r["text"])
        task, p = model.predict(r["text"])
        assert math.isclose(p, max(probs), abs_tol=1e-3)
        if p < model.threshold:
            assert task == UNSURE
            seen_unsure += 1
        else:
            assert task == TASKS[probs.index(max(probs))]
    assert seen_unsure >= 10  # the threshold is not decorative on real prompts


def test_never_code_or_math_for_humanities_roleplay_or_writing() -> None:
    model = default_model()
    for text in HUMANITIES_ROLEPLAY_WRITING:
        task, p = model.predict(text)
        assert task not in ("code_generation", "code_review", "math"), (text, task, p)


def test_calibration_tools() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    true = np.eye(3)[y] + rng.normal(0, 1.0, (400, 3))  # labels drawn as softmax(true) would not be...
    y = np.array([rng.choice(3, p=np.exp(z) / np.exp(z).sum()) for z in true])  # ...these are: calibrated
    t = fit_temperature(5.0 * true, y)  # the same scores, five times over-confident
    assert 3.5 < t < 7.0
    ece, table = reliability(np.array([0.9] * 10), np.array([1.0] * 9 + [0.0]))
    assert ece < 1e-9 and table[0]["n"] == 10


def test_minilm_choice_beats_cheap_on_real_prompts_and_never_codes_humanities() -> None:
    model = minilm()
    for split, rows in held_out_splits().items():
        report = evaluate(model, rows)
        assert report["accuracy"] >= MINILM_ACCURACY[split] - MARGIN[split]
        cheap = evaluate(default_model(), rows)["accuracy"]
        if split == "dolly15k":  # 36 prompts: the two are level there (docs/ROUTING.md)
            assert report["accuracy"] >= cheap
        else:
            assert report["accuracy"] > cheap
            assert report["ece"] <= 0.12
    for text in HUMANITIES_ROLEPLAY_WRITING:
        assert model.predict(text)[0] not in ("code_generation", "code_review", "math"), text


def _cfg(classifier: str) -> dict:
    return {"task_classifier": classifier, "deployments": FLEET,
            "model_groups": {"g": {"deployments": ["fast", "frontier"], "strategy": "rules",
                                   "options": {"rules": [{"name": "math", "when": {"task": "math"}, "to": "frontier"}],
                                               "default": "fast"}},
                             "plain": {"deployments": ["fast", "frontier"]}}}


def test_task_classifier_config_is_checked() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(_cfg("bert"), "t.yaml")
    assert "task_classifier" in str(e.value) and "t.yaml" in str(e.value)
    gw = Gateway(parse_config(_cfg("cheap"), "t.yaml"), source="t.yaml", request_log=False)
    assert gw.router.task_model is default_model() and "g" not in gw.router.prepares


async def test_minilm_classifier_embeds_before_routing_and_routes_by_task() -> None:
    model = minilm()
    gw = Gateway(parse_config(_cfg("minilm"), "t.yaml"), source="t.yaml", request_log=False)
    assert gw.router.task_model is model
    assert "g" in gw.router.prepares and "plain" not in gw.router.prepares  # first-healthy reads no task
    text = "Solve for x: 3x + 7 = 22, and show each step."
    async with gw:
        r = await gw.chat(ChatRequest(model="g", messages=[Message("user", text)]))
    assert r.deployment == "frontier"  # the math rule fired
    assert text in model._probs  # the embedding analyse used was the one the worker step computed
