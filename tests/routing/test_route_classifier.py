"""The task classifier: beats keyword lists on held-out folds of the labelled set, in English and
in other languages; the shipped weights load and agree with the float model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from modelyard.routing.classify import default_model, featurize, keyword_task, lexicon_task, window
from modelyard.routing.features import TASKS

DATA = Path(__file__).parent.parent / "data" / "tasks.jsonl"


def rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_labelled_set_is_big_varied_and_multilingual() -> None:
    data = rows()
    assert len(data) >= 300
    assert {r["task"] for r in data} == set(TASKS)
    per_task = {t: sum(1 for r in data if r["task"] == t) for t in TASKS}
    assert min(per_task.values()) >= 25
    non_en = [r for r in data if not r["text"].isascii()]
    assert len(non_en) >= 60 and len({r["lang"] for r in data}) >= 8
    assert len({r["text"] for r in data}) == len(data)  # no duplicates


def test_model_beats_keyword_baselines_on_held_out_folds() -> None:
    pytest.importorskip("numpy")
    from modelyard.routing.train_tasks import cross_validate, load_examples

    report = cross_validate(load_examples(DATA), k=5, seed=0)
    overall = report["overall"]
    assert overall["model"] >= 0.75
    assert overall["model"] > overall["keywords"] + 0.2
    assert overall["model"] > overall["lexicon"]
    for script in ("en", "non-en"):
        r = report["by_script"][script]
        assert r["model"] > r["keywords"], script
    # no class left behind: every task is recognised on most of its held-out prompts
    assert min(r["model"] for r in report["per_class"].values()) >= 0.6


def test_chat_weight_trades_chat_answers_for_typed_ones_and_the_confusion_adds_up() -> None:
    pytest.importorskip("numpy")
    from modelyard.routing.train_tasks import cross_validate, load_examples, train

    data = load_examples(DATA)
    full, light = train(data, chat_weight=1.0), train(data, chat_weight=0.1)
    n_chat = {m: sum(m.predict(t)[0] == "chat" for t, _ in data) for m in (full, light)}
    assert n_chat[light] < n_chat[full]  # a lighter `chat` loses prompts to the typed classes
    report = cross_validate(data[::3], k=3, seed=0)
    assert sum(sum(row.values()) for row in report["confusion"].values()) == report["examples"]
    assert all(report["confusion"][t].get(t, 0) / report["per_class"][t]["n"] == report["per_class"][t]["model"]
               for t in report["confusion"])


def test_shipped_model_is_trained_on_the_set_and_fast_path_matches_floats() -> None:
    model = default_model()
    data = rows()
    right = 0
    for r in data:
        feats = featurize(window(r["text"]))
        task, p = model.predict_features(feats)
        logits = model.scores(feats)
        assert task == (model.classes[logits.index(max(logits))] if p >= model.threshold else "chat")
        assert 0 < p <= 1
        right += task == r["task"]
    assert right / len(data) > 0.9  # training accuracy of the shipped weights


@pytest.mark.parametrize("gaps", [(0, 1, 2), (0, 5462, 11968, 19_999), (0, 20_000, 750_000), (3, 0, 0, 40_000)])
def test_the_softmax_reads_its_exponentials_from_a_table_with_the_same_doubles(gaps: tuple[int, ...]) -> None:
    # the fields are integers (scores × 1000); the top class's probability is the same double as the
    # definition's, for gaps inside the table and beyond it (computed then)
    model = default_model()
    top = 1 << 21
    fields = tuple(top - g for g in gaps) + (top - 7,) * (len(model.classes) - len(gaps))
    task, p = model._best(fields)
    assert p == 1.0 / sum([math.exp((v - top) / 1000.0) for v in fields])
    assert task == (model.classes[fields.index(top)] if p >= model.threshold else "chat")


@pytest.mark.parametrize(("text", "task"), [
    ("Write a Go function that merges two sorted slices.", "code_generation"),
    ("Traceback (most recent call last): KeyError: 'id' — what's wrong with my dict access?", "code_review"),
    ("Solve 5x - 3 = 17 for x.", "math"),
    ("Translate into Italian: the shop opens at nine.", "translation"),
    ("Write a limerick about a sleepy owl.", "creative_writing"),
    ("Who invented the telephone?", "simple_qa"),
    ("hey, how's your day going?", "chat"),
    ("Übersetze ins Französische: Ich komme morgen.", "translation"),
    ("¿Cuál es el río más largo de Europa?", "simple_qa"),
])
def test_unseen_prompts(text: str, task: str) -> None:
    assert default_model().predict(text)[0] == task


def test_keyword_baselines_are_what_they_say() -> None:
    assert keyword_task("please translate this") == "translation"
    assert keyword_task("bonjour") == "chat"
    assert lexicon_task("traduis ce texte") == "translation"
