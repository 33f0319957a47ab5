"""The routing hot path's shortcuts give what the plain definitions give: the marks regex, the
classifier's string-free sums, the system-prompt token cache and the length bound, `score`'s and
`rules`' orderings, the breaker check in the filters, the lazily explained decision, and the quick
path of groups whose strategy reads no features. And routing generates no code, per request or at
all, whatever the filters remove."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routekit import FLEET, gateway, group, req, sim

from modelyard.catalog import builtin_cards
from modelyard.errors import NoCandidate
from modelyard.resilience.health import HealthTracker
from modelyard.routing import classify
from modelyard.routing.analyze import round3
from modelyard.routing.candidates import est_cost, est_latency_ms
from modelyard.routing.classify import _MARK_CUES, _MARKS, default_model, featurize, featurize_words, window
from modelyard.routing.decision import LazyDecision
from modelyard.routing.features import TASKS, Features
from modelyard.routing.ranking import Ranking
from modelyard.routing.strategies import StrategyContext, lookup
from modelyard.routing.strategies.util import normalise_high, normalise_low
from modelyard.tokens import _count_system, count_message_tokens, count_tokens, token_bound
from modelyard.types import ChatRequest, ImagePart, Message, RouteDecision, Scored, TextPart, Tool, ToolCall

DATA = Path(__file__).parent.parent / "data" / "tasks.jsonl"
PROMPTS = [json.loads(x)["text"] for x in DATA.read_text(encoding="utf-8").splitlines() if x.strip()]
# text that hits the marks: operators between digits, code and list structure, CJK punctuation
MARKY = st.text(alphabet=st.sampled_from(list("0123456789 +-*/^=<>×÷(){};\n\t`:：'\"«“#\\fx.1)*•√∫∑²≤≥!ab")),
                max_size=40)
WORDY = st.lists(st.sampled_from(sorted({w for p in PROMPTS[:120] for w in p.lower().split()})), max_size=30)


def reference_marks(text: str) -> list[str]:
    """The marks regex as first written: one alternation, digit expression first, longest mark first."""
    rx = re.compile("|".join([r"[0-9] ?[-+*/^=<>×÷] ?[0-9(]",
                              *map(re.escape, sorted(_MARK_CUES, key=len, reverse=True))]))
    return rx.findall(text)


@settings(max_examples=300, deadline=None)
@given(text=MARKY)
def test_marks_regex_finds_what_the_plain_alternation_finds(text: str) -> None:
    assert _MARKS.findall(text) == reference_marks(text)


def test_marks_regex_on_the_labelled_prompts() -> None:
    for p in PROMPTS:
        low = window(p).lower()
        assert _MARKS.findall(low) == reference_marks(low)


def _check_window(text: str) -> None:
    model = default_model()
    feats, words, marks = featurize_words(text)
    task, p, words2, marks2, lang = model.analyze_window(text)
    assert (task, p) == model.predict_features(feats)
    assert words2 == words and marks2 == marks
    assert lang == classify.language(text, words)  # the stopword shortcut of `analyze_window`


def _reference_prediction(text: str) -> tuple[str, float]:
    """The classifier as first written: the feature list's packed rows summed, then a softmax over
    the per-class fields in a plain loop."""
    model = default_model()
    fields = model._fields(featurize(text))
    top = max(fields)
    p = 1.0 / sum([math.exp((v - top) / 1000.0) for v in fields])
    return (model.classes[fields.index(top)] if p >= model.threshold else "chat"), p  # unsure: chat


def test_classifier_outputs_are_pinned_on_the_labelled_prompts() -> None:
    # the same class and the same probability, to the bit, as the plain definition on every prompt
    model = default_model()
    for p in PROMPTS:
        w = window(p)
        assert model.analyze_window(w)[:2] == _reference_prediction(w) == model.predict(p)


def _reference_complexity(text: str, task: str, input_tokens: int) -> float:
    """`complexity` as first written: one expression, every term computed, then clamped and rounded."""
    from modelyard.routing.analyze import TASK_PRIOR
    length = min(1.0, math.log10(1 + input_tokens) / 4.0)
    score = 0.35 * TASK_PRIOR.get(task, 0.3) + 0.2 * length
    found = classify.find_marks(text)
    questions = text.count("?")
    if found or questions > 1:
        cats = classify.mark_categories(found)
        score += 0.2 * min(1.0, cats.count("x:reason") / 3.0)
        score += 0.1 * min(1.0, (cats.count("x:step") + ("k:list" in cats) + max(0, questions - 1)) / 4.0)
        score += 0.05 * (1.0 if "k:codeblock" in cats else 0.5 if "k:code" in cats else 0.0)
        score += 0.1 * min(1.0, cats.count("x:constraint") / 4.0)
    return round(min(1.0, max(0.0, score / 0.75)), 3)


def test_complexity_is_the_plain_expression_on_the_labelled_prompts() -> None:
    # precomputed length and prior terms, the no-cue shortcut: the same doubles
    from modelyard.routing.analyze import complexity
    for i, p in enumerate(PROMPTS):
        w = window(p)
        for n in (0, 1, 7 + i, 40 * i, 4095, 4096, 10_000 + i, 200_000):
            task = TASKS[(i + n) % len(TASKS)]
            assert complexity(w, task, n) == _reference_complexity(w, task, n), (p, task, n)
    assert complexity("x", "unknown-task", 3) == _reference_complexity("x", "unknown-task", 3)


WESTERN = "".join(map(chr, range(32, 256))) + "\n\t“”‘’–—…€œŠ™•"


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=WESTERN, max_size=40), other=st.sampled_from(["", "ж", "中", "’"]))
def test_word_split_by_table_is_the_regex_split(text: str, other: str) -> None:
    # ASCII and Windows-1252 text are split by a byte table; the words are `\w+`'s, in every case
    for t in (text, text + other):
        assert classify.scan(t)[0] == classify._WORD.findall(t.lower())


def test_word_split_by_table_on_the_labelled_prompts() -> None:
    for p in PROMPTS:
        w = window(p)
        assert classify.scan(w)[0] == classify._WORD.findall(w.lower())


def test_classifier_fast_sums_equal_the_feature_list_on_the_labelled_prompts() -> None:
    for p in PROMPTS:
        _check_window(window(p))


@settings(max_examples=200, deadline=None)
@given(words=WORDY, tail=MARKY, cjk=st.text(alphabet="翻译总结代码バグ요약 ?", max_size=8))
def test_classifier_fast_sums_equal_the_feature_list_on_random_text(words: list[str], tail: str, cjk: str) -> None:
    _check_window(" ".join(words) + tail + cjk)


def _reference_language(text: str) -> str:
    """`language` without the one-scan shortcut: every script searched in order."""
    for rx, code in classify._SCRIPTS:
        if rx.search(text):
            return code
    return classify.language(text.encode("ascii", "replace").decode(), featurize_words(text)[1])


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("abc éüñ¿ßça la de el 日本語かな한국어中文русскийعربيहिन्दी")),
                    max_size=40))
def test_language_script_shortcut_agrees_with_searching_every_script(text: str) -> None:
    words = featurize_words(text)[1]
    assert classify.language(text, words) == _reference_language(text)


def test_language_on_the_labelled_prompts() -> None:
    for p in PROMPTS:
        w = window(p)
        assert classify.language(w, featurize_words(w)[1]) == _reference_language(w)


def test_language_tie_goes_to_the_first_language_seen() -> None:
    # one Spanish-only and one French-only stopword: a tie, decided by order (it used to follow the
    # iteration order of a set of strings, which changes with the interpreter's hash seed)
    assert classify.language("cómo avec") == "es"
    assert classify.language("avec cómo") == "fr"


def test_featurize_is_a_bag_of_word_bigram_cue_and_structure_features() -> None:
    f = featurize("Translate this: hello world?")
    assert {"w:translate", "b:translate this", "c:translate", "p:translate", "k:question"} <= set(f)


def test_system_prompt_counts_are_cached_and_bounded() -> None:
    cache = _count_system.counts
    cache.clear()
    sys_prompt = "You are terse."
    msgs = [Message("system", sys_prompt), Message("user", "hi")]
    first = count_message_tokens(msgs)
    assert {sys_prompt: count_tokens(sys_prompt)} == cache  # the user turn is not remembered
    assert count_message_tokens(msgs) == first
    for i in range(_count_system.size + 5):  # full: starts over rather than growing
        count_message_tokens([Message("system", f"prompt {i}")])
    assert 0 < len(cache) <= _count_system.size
    assert count_message_tokens([{"role": "system", "content": sys_prompt}]) == \
        count_message_tokens([Message("system", sys_prompt)])


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=4), image=st.booleans(), name=st.booleans(),
       call=st.booleans())
def test_token_bound_is_never_below_the_estimate(texts: list[str], image: bool, name: bool, call: bool) -> None:
    msgs = [Message("user", t) for t in texts]
    if image:
        msgs.append(Message("user", [TextPart(texts[0]), ImagePart("https://x/i.png")]))
    if name:
        msgs.append(Message("user", texts[-1], name="bob_the_user"))
    if call:
        msgs.append(Message("assistant", None, tool_calls=[ToolCall("c1", "lookup", '{"q": "x"}')]))
    assert token_bound(msgs) >= count_message_tokens(msgs)
    assert token_bound([{"role": "user", "content": texts[0]}]) >= count_message_tokens([{"role": "user",
                                                                                        "content": texts[0]}])


# --- strategies ----------------------------------------------------------------------------------

def _fleet(n: int) -> dict[str, dict]:
    cards = ["sim/frontier", "sim/balanced", "sim/fast", "sim/local"]
    return {f"d{i}": sim(cards[i % 4]) for i in range(n)}


features = st.builds(Features, task=st.sampled_from(TASKS), complexity=st.floats(0, 1),
                     input_tokens=st.integers(1, 50_000), output_tokens=st.integers(1, 4000),
                     optimize_for=st.sampled_from([None, "cost", "latency", "quality"]))


def _ctx(deps: dict, health: HealthTracker) -> StrategyContext:
    return StrategyContext(group="g", deployments=deps, groups={"g": list(deps)}, health=health)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=features, data=st.data())
def test_score_order_is_the_normalised_weighted_sum(f: Features, data: st.DataObject) -> None:
    fleet = _fleet(9)
    gw = gateway(group("score", deps=list(fleet)), fleet)
    deps = gw.router.plans["g"].deployments
    # none, some or every deployment with an observed time to first token (none: priors only)
    for d in deps[:data.draw(st.sampled_from([0, 3, len(deps)]))]:
        gw.health.ok(d.name, latency_ms=900.0, ttft_ms=data.draw(st.floats(10, 5000)))
    cands = data.draw(st.sampled_from([deps, deps[2:], deps[::2]]))
    s = lookup("score")({}, _ctx({d.name: d for d in deps}, gw.health))
    ranked = s.rank(ChatRequest(model="g", messages=[]), f, cands)
    wc, wl, wq = s.weights_for(ChatRequest(model="g", messages=[]), f)
    _, _, quals = s.components(f, cands)
    costs = [est_cost(d, f) for d in cands]  # the filters' definitions, not the strategy's tables
    lats = [est_latency_ms(d, f, gw.health) for d in cands]
    ref = dict(zip([d.name for d in cands],
                   [wc * a + wl * b + wq * c for a, b, c in zip(normalise_low(costs), normalise_low(lats),
                                                               normalise_high(quals), strict=True)], strict=True))
    assert [x.score for x in ranked] == pytest.approx([ref[x.deployment] for x in ranked], abs=1e-12)
    got = [ref[x.deployment] for x in ranked]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(got))  # best first


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=features, data=st.data())
def test_rules_move_the_targets_to_the_front_of_the_inner_order(f: Features, data: st.DataObject) -> None:
    deps = _fleet(8)
    targets = data.draw(st.lists(st.sampled_from(list(deps)), min_size=1, unique=True))
    options = {"rules": [{"name": "r", "when": {}, "to": targets}], "then": "score"}
    gw = gateway({"g": {"deployments": list(deps), "strategy": "rules", "options": options}}, deps)
    plan = gw.router.plans["g"]
    for d in plan.deployments[:data.draw(st.sampled_from([0, 3, len(deps)]))]:  # observed TTFTs, or priors
        gw.health.ok(d.name, latency_ms=900.0, ttft_ms=data.draw(st.floats(10, 5000)))
    cands = data.draw(st.sampled_from([plan.deployments, plan.deployments[1:]]))
    if not set(targets) & {d.name for d in cands}:
        return
    r = ChatRequest(model="g", messages=[])
    inner = plan.strategy.inner.rank(r, f, cands)
    expected = [(s.deployment, s.score + 1.0, "rule 'r' target") for s in inner if s.deployment in targets] + \
        [(s.deployment, s.score, "not a target of rule 'r' (fallback)") for s in inner if s.deployment not in targets]
    ranked = plan.strategy.rank(r, f, cands)
    assert ranked.rule == "r"
    assert [(x.deployment, x.score, x.reason) for x in ranked] == expected


def test_ranking_of_a_materialised_list_keeps_it() -> None:
    deps = gateway(group("first-healthy")).router.plans["g"].deployments
    scored = [Scored(deps[2].name, 0.9, True, "x"), Scored(deps[0].name, 0.5, True, "y"),
              Scored(deps[1].name, 0.1, True, "z"), Scored(deps[3].name, 0.0, True, "w")]
    r = Ranking.of(scored, deps)
    assert r.deployments == [deps[2], deps[0], deps[1], deps[3]] and r.scored() is scored
    relabelled = r.relabel("why", "default")
    assert [(s.deployment, s.score, s.reason) for s in relabelled.scored()] == \
        [(s.deployment, s.score, "why") for s in scored]


# --- filters -------------------------------------------------------------------------------------

def test_breaker_fast_path_agrees_with_asking_each_deployment() -> None:
    gw = gateway(group("first-healthy"))
    plan = gw.router.plans["g"]
    f = Features()
    assert plan.filter.run(f).eligible == plan.deployments  # all closed
    for _ in range(10):
        gw.health.failed("balanced")
    assert gw.health.breaker.state("balanced") == "open"
    out = plan.filter.run(f)
    assert [d.name for d in out.eligible] == ["frontier", "fast", "local"]
    assert [d.name for d in out.deferred] == ["balanced"] and "circuit open" in out.rejected["balanced"]
    breaker, later = gw.health.breaker, 1e12  # a probe after the cool-down that succeeds closes it again
    token = breaker.acquire("balanced", later)
    breaker.success("balanced", later)
    breaker.release("balanced", token)
    assert breaker.state("balanced") == "closed"
    assert plan.filter.run(f).eligible == plan.deployments


# --- the decision --------------------------------------------------------------------------------

def test_lazy_decision_builds_its_explanation_once_when_read() -> None:
    calls: list[str] = []

    def cands() -> list[Scored]:
        calls.append("c")
        return [Scored("a", 1.0, True, "best")]

    def feats() -> dict:
        calls.append("f")
        return {"task": "chat"}

    d = LazyDecision.build("m", "a", "score", "best", None, cands, feats)
    assert isinstance(d, RouteDecision) and calls == []
    assert d.to_dict()["candidates"] == [{"deployment": "a", "eligible": True, "reason": "best", "score": 1.0}]
    assert d.features == {"task": "chat"} and d.candidates is d.candidates
    assert sorted(calls) == ["c", "f"]  # each made once
    d.features.update(extra=1)  # in place, like the dataclass field
    assert d.to_dict()["features"] == {"task": "chat", "extra": 1}
    d.candidates = []
    assert d.to_dict()["candidates"] == []
    plain = pickle.loads(pickle.dumps(d))
    assert type(plain) is RouteDecision and plain.to_dict() == d.to_dict()
    assert copy.copy(d).to_dict() == d.to_dict()
    assert dataclasses.replace(d, attempts=2).attempts == 2


@pytest.mark.parametrize("strategy", ["score", "rules", "first-healthy", "round-robin"])
def test_decision_explains_itself_in_the_log_and_in_explain(strategy: str) -> None:
    options = {"rules": [{"when": {"task": "math"}, "to": "frontier"}]} if strategy == "rules" else {}
    gw = gateway(group(strategy, options))
    r = req("Solve 3x + 1 = 10 for x.")
    chain, decision = gw.plan(gw.resolve("g"), r)
    d = decision.to_dict()
    assert [c["deployment"] for c in d["candidates"]] == list(FLEET)  # group order, every candidate
    assert d["chosen"] == chain[0].name and d["features"]["input_tokens"] > 0
    ex = gw.router.explain(gw.resolve("g"), r)
    assert ex["chain"] == [x.name for x in chain] or strategy == "round-robin"
    assert {c["deployment"] for c in ex["candidates"]} == set(FLEET)


# --- the quick path (strategy reads no features) ---------------------------------------------------

requests = st.builds(
    lambda text, system, image, tools, max_tokens, meta: ChatRequest(
        model="g", messages=[*([Message("system", system)] if system else []),
                             Message("user", [TextPart(text), ImagePart("https://x/i.png")] if image else text)],
        tools=[Tool(name="t")] if tools else None, max_tokens=max_tokens, metadata=meta),
    st.text(max_size=200), st.sampled_from([None, "", "Be brief."]), st.booleans(), st.booleans(),
    st.none() | st.sampled_from([16, 4000, 100_000]), st.sampled_from([{}, {"tags": ["eu"]}, {"user": "u1"}]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(r=requests, windows=st.sampled_from([(8192, 4096), (200_000, 8192)]))
def test_quick_path_decides_what_the_full_analysis_decides(r: ChatRequest, windows: tuple[int, int]) -> None:
    deps = {"up": {**sim("sim/fast"), "tags": ["eu"]}, "down": sim("sim/local")}
    gw = gateway({"g": {"deployments": ["up", "down"]}}, deps)
    plan = gw.router.plans["g"]
    assert plan.quick
    for d in plan.deployments:  # small windows make the context filter bite
        d.card = dataclasses.replace(d.card, context_window=windows[0], max_output=windows[1])
    plan.filter = type(plan.filter)(plan.deployments, plan.filter.constraints, gw.health, gw.router.hooks)
    route = gw.resolve("g")
    quick = _outcome(lambda: gw.router.plan(route, r))
    plan.quick = False
    full = _outcome(lambda: gw.router.plan(route, r))
    assert quick == full


def _outcome(run) -> tuple:
    try:
        chain, decision = run()
    except NoCandidate as e:
        return ("error", e.message)
    d = decision.to_dict()
    d["features"].pop("hour", None)
    return ([x.name for x in chain], d)


def test_quick_path_skips_the_analysis_until_the_decision_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    gw = gateway({"g": {"deployments": ["fast"]}})
    seen: list[int] = []
    real = classify.TaskModel.analyze_window
    monkeypatch.setattr(classify.TaskModel, "analyze_window", lambda *a: seen.append(1) or real(*a))
    import modelyard.routing.router as router_mod

    counted: list[int] = []
    real_analyze = router_mod.analyze
    monkeypatch.setattr(router_mod, "analyze", lambda *a, **k: counted.append(1) or real_analyze(*a, **k))
    chain, decision = gw.plan(gw.resolve("g"), req("hello"))
    assert [d.name for d in chain] == ["fast"] and counted == []
    assert decision.features["input_tokens"] == count_message_tokens([Message("user", "hello")])
    assert counted == [1] and seen == []  # the light analysis: no classifier
    assert decision.candidates[0].reason == "position 1 in group order"


# --- conditions: nested closures, numbers compared as they are ---------------------------------

@pytest.mark.parametrize(("when", "true", "false"), [
    ({"latency_budget_ms": {"lt": 500}}, Features(latency_budget_ms=200.0), Features()),  # None never compares
    ({"latency_budget_ms": {"between": [0, 500]}}, Features(latency_budget_ms=0.0), Features()),
    ({"input_tokens": {"gte": 10}, "complexity": {"lt": 0.5}, "task": "chat"},
     Features(input_tokens=10, complexity=0.2), Features(input_tokens=10, complexity=0.2, task="math")),
    ({"any": [{"task": "math"}, {"hour": {"between": [22, 6]}}, {"language": {"ne": "en"}}]},
     Features(hour=5), Features(hour=12)),
    ({"all": [{"hour": {"gt": 3}}, {"hour": {"lte": 4}}, {"weekday": {"between": [5, 1]}}]},
     Features(hour=4, weekday=6), Features(hour=4, weekday=2)),
])
def test_compiled_conditions(when: dict, true: Features, false: Features) -> None:
    from modelyard.routing.conditions import compile_condition

    cond = compile_condition(when, ("when",))
    assert cond(true) is True and cond(false) is False


WHENS = [
    {}, {"task": "math"}, {"task": ["code_generation", "code_review"]}, {"task": {"not_in": ["chat"]}},
    {"complexity": {"gte": 0.6}}, {"complexity": {"gt": 0.2, "lte": 0.7}}, {"input_tokens": {"lt": 100}},
    {"hour": {"between": [22, 6]}}, {"hour": {"between": [1, 5]}, "tier": "free"}, {"weekday": ["sat", "sun"]},
    {"language": {"ne": "en"}}, {"tier": {"exists": True}}, {"tier": {"exists": False}}, {"user": {"matches": "^a"}},
    {"capabilities": "vision"}, {"capabilities": {"contains_any": ["tools", "json"]}},
    {"tags": {"contains_all": ["eu", "batch"], "exists": True}}, {"tags": {"exists": False}},
    {"latency_budget_ms": {"lt": 500}}, {"max_cost_usd": {"between": [0, 0.01]}}, {"metadata.project": "apollo"},
    {"not": {"task": "chat"}}, {"any": [{"task": "translation"}, {"language": {"ne": "en"}}]},
    {"all": [{"complexity": {"lt": 0.3}}, {"any": [{"tier": "pro"}, {"not": {"capabilities": "tools"}}]}]},
    {"task_confidence": {"gte": 0.9}, "output_tokens": {"gt": 200}},
]
feature_values = st.builds(
    Features, task=st.sampled_from(TASKS), task_confidence=st.floats(0, 1),
    complexity=st.sampled_from([0.0, 0.2, 0.3, 0.6, 0.7, 1.0]),
    input_tokens=st.sampled_from([0, 99, 100, 5000]), output_tokens=st.integers(0, 400),
    capabilities=st.frozensets(st.sampled_from(["vision", "tools", "json"])), language=st.sampled_from(["en", "fr"]),
    user=st.none() | st.sampled_from(["alice", "bob"]), tier=st.none() | st.sampled_from(["free", "pro"]),
    tags=st.frozensets(st.sampled_from(["eu", "batch"])), latency_budget_ms=st.none() | st.sampled_from([100.0, 500.0]),
    max_cost_usd=st.none() | st.sampled_from([0.0, 0.005, 0.01]), hour=st.integers(0, 23), weekday=st.integers(0, 6),
    extra=st.sampled_from([{}, {"project": "apollo"}, {"project": "x"}]))


@settings(max_examples=300, deadline=None)
@given(f=feature_values, order=st.permutations(range(len(WHENS))))
def test_rules_pick_the_first_rule_whose_condition_holds(f: Features, order: list[int]) -> None:
    from modelyard.routing.conditions import compile_condition

    whens = [WHENS[i] for i in order]
    conds = [compile_condition(w, ("when",)) for w in whens]
    options = {"rules": [{"name": f"r{i}", "when": w, "to": "fast"} for i, w in enumerate(whens)], "then": "score"}
    plan = gateway(group("rules", options)).router.plans["g"]
    rule, _, skipped = plan.strategy.pick(f, plan.deployments)
    first = next((i for i, c in enumerate(conds) if c(f)), None)
    assert (rule.label if rule is not None else None) == (f"r{first}" if first is not None else None)
    assert skipped == []


@settings(max_examples=500, deadline=None)
@given(x=st.floats(0, 1) | st.integers(0, 2000).map(lambda i: i / 2000))
def test_round3_is_round_to_three_digits(x: float) -> None:
    assert round3(x) == round(x, 3)


def test_round3_on_halves_and_their_neighbours() -> None:
    for i in range(1001):
        for x in ((i + 0.5) / 1000, math.nextafter((i + 0.5) / 1000, 0), math.nextafter((i + 0.5) / 1000, 2),
                  i / 1000, math.nextafter(i / 1000, 2)):
            if 0 <= x <= 1:
                assert round3(x) == round(x, 3), x


REAL_CARDS = [c for c in builtin_cards() if not c.startswith("sim/")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=features, n=st.sampled_from([7, 26, 50]), data=st.data())
def test_score_on_real_cards_is_the_normalised_weighted_sum(f: Features, n: int, data: st.DataObject) -> None:
    # real cards, some repeated; none, some or every deployment with an observed time to first token
    fleet = {f"d{i}": sim(REAL_CARDS[i % len(REAL_CARDS)]) for i in range(n)}
    gw = gateway(group("score", deps=list(fleet)), fleet)
    s, deps = gw.router.plans["g"].strategy, gw.router.plans["g"].deployments
    for d in deps[:data.draw(st.sampled_from([0, 1, n]))]:
        gw.health.ok(d.name, latency_ms=900.0, ttft_ms=data.draw(st.floats(10, 5000)))
    cands = data.draw(st.sampled_from([deps, deps[1:], deps[::3]]))
    r = ChatRequest(model="g", messages=[])
    wc, wl, wq = s.weights_for(r, f)
    ref = [wc * a + wl * b + wq * c for a, b, c in zip(
        normalise_low([est_cost(d, f) for d in cands]), normalise_low([est_latency_ms(d, f, gw.health) for d in cands]),
        normalise_high([d.card.quality_for(f.task) for d in cands]), strict=True)]
    got = s.order(r, f, cands)
    assert list(got.scores) == pytest.approx(ref, abs=1e-9)
    ordered = [ref[i] for i in got.order]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(ordered))


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calls of the builtins that turn text into code, from anywhere, recorded."""
    import builtins

    calls: list[str] = []
    for name in ("exec", "eval", "compile"):
        real = getattr(builtins, name)
        monkeypatch.setattr(builtins, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    return calls


@pytest.mark.parametrize("strategy", ["score", "rules", "tier", "budget-aware", "first-healthy"])
def test_no_code_is_generated_per_request_whatever_the_filters_remove(strategy: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # a breaker open, a capability filter, a request hint: each decision with a different candidate set
    fleet = {f"d{i}": sim(REAL_CARDS[i % len(REAL_CARDS)]) for i in range(20)}
    options = {"rules": [{"when": {"task": "math"}, "to": "d1"}]} if strategy == "rules" else {}
    gw = gateway(group(strategy, options, deps=list(fleet)), fleet)
    route = gw.resolve("g")
    image = ChatRequest(model="g", messages=[Message("user", [TextPart("what is this?"), ImagePart("https://x/i.png")])])
    requests = [req("Solve 3x + 1 = 10."), image, req("hi", metadata={"max_cost_usd": 0.0001}), req("hello")]
    calls = _counting(monkeypatch)
    for i in range(12):
        if i == 4:
            for _ in range(5):
                gw.health.failed("d0")
        chain, decision = gw.plan(route, requests[i % len(requests)])
        decision.to_dict()
        assert chain
    assert calls == []


def test_no_runtime_code_generation_in_src() -> None:
    # exec / eval / compile of generated source anywhere in the package
    import ast

    import modelyard

    root = Path(modelyard.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("exec", "eval", "compile"):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []


def test_logged_json_of_a_fixed_quick_path_decision_is_encoded_once_per_outcome() -> None:
    gw = gateway({"g": {"deployments": ["fast", "local", "balanced"]}})
    route, plan = gw.resolve("g"), gw.router.plans["g"]
    assert plan.quick and plan.log_cache == {}
    texts = []
    for attempts, fallbacks in [(1, []), (1, []), (2, ["fast"])]:
        _, d = gw.plan(route, req("hello"))
        d.attempts, d.fallbacks = attempts, fallbacks
        texts.append(d.log_json())
        assert json.loads(texts[-1]) == d.log_dict()  # the cached text is the decision's own encoding
    assert texts[0] == texts[1] != texts[2] and len(plan.log_cache) == 2  # one entry per outcome
    # a deployment set aside by its breaker makes the verdicts request-specific: not cached
    for _ in range(10):
        gw.health.failed("fast")
    _, d = gw.plan(route, req("hello"))
    logged = json.loads(d.log_json())
    assert logged == d.log_dict() and logged["chosen"] == "local" and len(plan.log_cache) == 2
    assert [c["eligible"] for c in logged["candidates"]] == [False, True, True]
