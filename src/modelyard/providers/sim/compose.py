"""Free-text answers of the simulated fleet, per task (facts, explanations, multiple choice,
math, labels, summaries, code, creative writing), in each tier's own phrasing."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from ...tokens import count_tokens
from .words import (
    _CAPITALS,
    _HEAD,
    _STOP,
    _WORD,
    _arithmetic,
    _choices_in,
    _fmt_number,
    _keywords,
    _topic,
    _wordset,
)

if TYPE_CHECKING:
    from .context import _Context


# Phrasings per tier: what makes each simulated model recognisable.
_OPENERS = {
    "frontier": ["Short answer: {core}", "Here's the core idea: {core}", "{core}"],
    "balanced": ["Sure. {core}", "Good question. {core}", "{core}"],
    "fast": ["{core}"],
    "local": ["Okay, so {core_l}", "Well, {core_l}", "{core}"],
}
_CORE_CLAUSE = [  # the topic is a clause: "why the sky looks blue"
    "{Topic} mostly comes down to {kw} and {kw2}.",
    "{Topic} is easiest to see once you look at {kw}.",
    "The explanation for {topic} starts with {kw}.",
]
_CORE_NOUN = [  # the topic is a noun phrase: "recursion", "the French revolution"
    "{Topic} is best understood through {kw} and {kw2}.",
    "When it comes to {topic}, the key factor is {kw}.",
    "At its heart, {topic} is about {kw}.",
    "{Topic} boils down to how {kw} relates to {kw2}.",
]
_BODY = [
    "It helps to start with {kw}, because most of the other details follow from it.",
    "In practice, {kw} and {kw2} tend to matter more than people expect.",
    "A useful way to think about it is as a trade-off between {kw} and {kw2}.",
    "Most of the confusion comes from mixing up {kw} with {kw2}.",
    "A concrete example makes this clearer: look at what happens to {kw} when the conditions change.",
    "There are exceptions, but they are rare enough that the general rule holds.",
    "The same pattern shows up in many related situations, which is why it is worth understanding.",
    "It is worth checking the assumptions first, since {kw} is often where things go wrong.",
    "Measured carefully, the effect is real, although smaller than it first appears.",
    "Historically, the understanding of {kw} developed step by step rather than all at once.",
    "One common misconception is that {kw} works in isolation; in reality it depends on {kw2}.",
    "If you want to go further, compare how {kw} behaves at small and at large scales.",
    "The details vary from case to case, but the underlying mechanism stays the same.",
    "Put simply, change {kw} and almost everything downstream changes with it.",
]
_WEAK = [
    "I might be oversimplifying this, though.",
    "I'm not completely sure about every detail here.",
    "That's roughly how it works, at least in the common cases.",
]
_CLOSERS = {
    "frontier": ["If you want, I can go deeper into {kw}.", "Happy to expand on any part of this.", ""],
    "balanced": ["Hope that helps!", "", "Let me know if you'd like an example."],
    "fast": [""],
    "local": ["Hope that makes sense.", ""],
}
_GREETINGS = {
    "frontier": ["Hi there! What can I help you with today?", "Hello! How can I help you today?"],
    "balanced": ["Hello! How can I help?", "Hi! What can I do for you?"],
    "fast": ["Hi!", "Hello!"],
    "local": ["Hey there!", "Hi, nice to meet you!"],
}
_GREETING = re.compile(r"^\s*(?:say\s+)?(?:hi|hello|hey|howdy|good (?:morning|afternoon|evening)|greetings|"
                       r"yo|hiya)\b[\s!.,]*(?:there)?[\s!.,]*$", re.I)
_THANKS = re.compile(r"^\s*(?:thanks|thank you|thx|cheers)\b", re.I)


def _sentence(ctx: _Context, index: int, topic: str) -> str:
    return _fill(ctx.rng(index, "sentence").choice(_CORE_NOUN), topic, _keywords(ctx.user_text), 0)


_FALLBACK_KWS = ("a few concrete examples", "the underlying mechanism", "the basic building blocks",
                 "the surrounding context", "the edge cases")


def _fill(template: str, topic: str, kws: list[str], shift: int) -> str:
    """Fill a template; a topic of one or two words is not reused as its own keyword."""
    short = set(topic.lower().split()) if len(topic.split()) <= 2 else set()
    pool = [k for k in kws if k not in short] or list(_FALLBACK_KWS)
    kw, kw2 = pool[shift % len(pool)], pool[(shift + 1) % len(pool)]
    if kw2 == kw:
        kw2 = _FALLBACK_KWS[shift % len(_FALLBACK_KWS)]
    return template.format(topic=topic, Topic=topic[:1].upper() + topic[1:], kw=kw, kw2=kw2)


def _sentence_budget(ctx: _Context, rng: random.Random, good: bool) -> int:
    base = {"frontier": 3, "balanced": 2, "fast": 1, "local": 1}[ctx.prof.tier]
    cap = {"frontier": 6, "balanced": 4, "fast": 3, "local": 2}[ctx.prof.tier]
    want = ctx.instructions
    if re.search(r"\b(one sentence|one word|in a word|briefly|brief|short|concise|tl;?dr|one line)\b", want):
        return 1
    n = base + min(2, count_tokens(ctx.user_text) // 40) + (rng.random() < 0.5)
    if re.search(r"\b(in detail|detailed|thorough|step by step|elaborate|in depth)\b", want):
        n += 2
    if not good:
        n -= 1
    return max(1, min(cap, n))


def _compose(ctx: _Context, index: int) -> str:
    """A plausible reply to the last user message, in the deployment's own style."""
    text, tier = ctx.user_text.strip(), ctx.prof.tier
    rng, good = ctx.rng(index, "compose"), ctx.is_good(index)
    if not text:
        return rng.choice(_GREETINGS[tier])
    if _GREETING.match(text):
        return rng.choice(_GREETINGS[tier])
    if _THANKS.match(text):
        return rng.choice(["You're welcome!", "Glad I could help.", "Any time!"])
    choices = _choices_in(text)
    if choices:
        return _multiple_choice(ctx, rng, good, choices)
    arith = _arithmetic(text)
    if arith:
        return _math(ctx, rng, good, *arith)
    fact = _fact(ctx, rng, good)
    if fact:
        return fact
    task = ctx.task
    if task == "classification":
        return _classify(ctx, rng, good)
    if task == "summarization":
        return _summarize(ctx, rng, good)
    if task == "code_generation":
        return _code(ctx, rng, good)
    if task == "creative_writing":
        return _creative(ctx, rng, good)
    return _explain(ctx, rng, good)


_FACTS = (
    (re.compile(r"\blargest planet\b", re.I), "the largest planet in the Solar System", "Jupiter"),
    (re.compile(r"\bwho wrote hamlet\b", re.I), "Hamlet was written by", "William Shakespeare"),
    (re.compile(r"\bboiling point of water\b", re.I), "water boils at", "100 °C (212 °F) at sea level"),
    (re.compile(r"\bspeed of light\b", re.I), "the speed of light is", "about 299,792 km per second"),
    (re.compile(r"\bchemical symbol for gold\b", re.I), "the chemical symbol for gold is", "Au"),
    (re.compile(r"\bhow many continents\b", re.I), "the number of continents is usually given as", "seven"),
)
_CAPITAL_Q = re.compile(r"\bcapital (?:city )?of ((?:the )?[a-z]+(?: [a-z]+)?)\b", re.I)


def _fact(ctx: _Context, rng: random.Random, good: bool) -> str | None:
    """A short factual answer for the handful of questions every demo asks."""
    text = ctx.user_text[:_HEAD]
    m = _CAPITAL_Q.search(text)
    subject = answer = None
    if m and (country := m.group(1).lower().rstrip("?. ")) in _CAPITALS:
        subject, answer = f"the capital of {m.group(1).rstrip('?. ')}", _CAPITALS[country]
        wrong = [c for c in _CAPITALS.values() if c != answer]
    else:
        for pattern, subj, value in _FACTS:
            if pattern.search(text):
                subject, answer, wrong = subj, value, [v for _, _, v in _FACTS if v != value]
                break
    if subject is None or answer is None:
        return None
    if not good:
        answer = rng.choice(wrong)
    sentence = f"{subject[:1].upper() + subject[1:]}{'' if subject.endswith(' is') else ' is'} {answer}."
    sentence = sentence.replace(" by is ", " by ").replace(" at is ", " at ").replace(" as is ", " as ")
    tier = ctx.prof.tier
    if tier == "fast":
        return answer + "."
    if tier == "local":
        return f"I believe it's {answer}."
    if tier == "frontier":
        return sentence.replace(answer, f"**{answer}**", 1)
    return sentence


def _explain(ctx: _Context, rng: random.Random, good: bool) -> str:
    tier, kws = ctx.prof.tier, _keywords(ctx.user_text)
    topic = _topic(ctx.user_text) or (kws[0] if kws else "this")
    in_topic = set(topic.lower().split())
    kws.sort(key=lambda k: k.lower() not in in_topic)  # stable: on-topic words first
    clause = topic.split(" ", 1)[0].lower() in ("why", "how", "what", "when", "where", "who", "whether", "which")
    core = _fill(rng.choice(_CORE_CLAUSE if clause else _CORE_NOUN), topic, kws, 0)
    opener = rng.choice(_OPENERS[tier]).format(core=core, core_l=core[:1].lower() + core[1:])
    n = _sentence_budget(ctx, rng, good)
    body = [_fill(t, topic, kws, k + 1) for k, t in enumerate(rng.sample(_BODY, k=max(0, n - 1)))]
    if not good:
        body.append(rng.choice(_WEAK))
    if tier == "frontier" and len(body) >= 3:
        text = opener + "\n\nKey points:\n" + "\n".join(f"- {s}" for s in body)
    else:
        text = " ".join([opener, *body])
    closer = _fill(rng.choice(_CLOSERS[tier]), topic, kws, 0) if n > 1 else ""
    return (text + ("\n\n" if "\n" in text else " ") + closer).strip() if closer else text


def _multiple_choice(ctx: _Context, rng: random.Random, good: bool, choices: list[tuple[str, str]]) -> str:
    pick = ctx.consensus_rng("mc").choice(choices) if good else rng.choice(choices)
    letter, option = pick
    tier = ctx.prof.tier
    if tier == "fast" or (tier != "frontier" and re.search(r"answer:\s*$", ctx.user_text, re.I)):
        return f"{letter}. {option}" if tier != "local" else letter
    why = _fill(rng.choice(["The other options conflict with how {kw} works.",
                            "It is the only option consistent with {kw}.",
                            "This follows directly once you consider {kw}."]), "", _keywords(ctx.user_text), 0)
    return f"The answer is {letter}. {option}\n\n{why}" if tier == "frontier" else f"{letter}. {option} — {why}"


def _math(ctx: _Context, rng: random.Random, good: bool, expr: str, value: float) -> str:
    if not good:  # a plausible slip: off by a little
        value = value + rng.choice((-1, 1)) * max(1, round(abs(value) * rng.choice((0.01, 0.1)) or 1))
    shown = _fmt_number(value)
    tier = ctx.prof.tier
    if tier == "frontier":
        return f"{expr} = {shown}.\n\nSo the answer is **{shown}**."
    if tier == "balanced":
        return f"{expr} = {shown}."
    if tier == "local":
        return f"I get {shown}."
    return shown


_POSITIVE = _wordset("good great excellent amazing love loved lovely fantastic wonderful happy best perfect "
                      "awesome enjoyed nice recommend delighted pleased superb brilliant fast friendly")
_NEGATIVE = _wordset("bad terrible awful hate hated poor worst broken disappointing disappointed slow rude "
                      "horrible useless angry refund late never problem problems issue issues sad")


_SPAMMY = _wordset("free winner won prize click offer urgent claim cash bonus guaranteed limited "
                    "act now congratulations selected")
_LABEL_LIST = re.compile(r"\b(?:into|as|one of|categories|labels|options)\b:?\s+([\w\s,/'-]+?)(?:[.?:\n]|$)", re.I)


def _classify(ctx: _Context, rng: random.Random, good: bool) -> str:
    """A label: lexicon-based for sentiment and spam, the shared consensus pick otherwise."""
    text = ctx.user_text
    low, words = text.lower(), set(_WORD.findall(text.lower()))
    if "spam" in low:
        labels = ["spam", "not spam"]
        best = "spam" if len(words & _SPAMMY) >= 2 else "not spam"
    elif "sentiment" in low or ("positive" in low and "negative" in low):
        labels = ["positive", "negative"] + (["neutral"] if "neutral" in low or "positive" not in low else [])
        score = len(words & _POSITIVE) - len(words & _NEGATIVE)
        best = "positive" if score > 0 else "negative" if score < 0 else labels[-1]
    else:
        m = _LABEL_LIST.search(text)
        labels = [w.strip() for w in re.split(r",|/|\bor\b", m.group(1)) if w.strip()] if m else []
        if len(labels) < 2:
            return _explain(ctx, rng, good)
        best = ctx.consensus_rng("label").choice(labels)
    label = best if good else rng.choice([lab for lab in labels if lab != best] or labels)
    if ctx.prof.tier in ("fast", "local") or "one word" in ctx.instructions:
        return label[:1].upper() + label[1:]
    return f"{label[:1].upper() + label[1:]}. " + rng.choice([
        "The wording points clearly in that direction.",
        "Most of the signal comes from the choice of words.",
        "That is the most consistent reading of the text."])


def _summarize(ctx: _Context, rng: random.Random, good: bool) -> str:
    text = ctx.user_text
    body = text.split(":", 1)[1] if ":" in text[:80] else text
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(body.split())) if len(s.split()) > 3]
    if not sentences:
        return _explain(ctx, rng, good)
    kws = set(_keywords(body)[:6])
    ranked = sorted(sentences, key=lambda s: -len(kws & set(_WORD.findall(s.lower()))))
    n = {"frontier": 3, "balanced": 2, "fast": 1, "local": 1}[ctx.prof.tier]
    keep = [s for s in sentences if s in ranked[:n]] if good else ranked[-n:]
    lead = {"frontier": "Summary: ", "balanced": "In short: ", "fast": "", "local": "Basically, "}[ctx.prof.tier]
    return lead + " ".join(keep)


_LANGS = (("python", "python"), ("javascript", "javascript"), ("typescript", "typescript"), ("golang", "go"),
          (" go ", "go"), ("rust", "rust"), ("java", "java"), ("sql", "sql"), ("bash", "bash"), ("shell", "bash"))
_CODE_WORDS = _wordset("function method class script program code snippet python javascript typescript "
                        "golang rust java sql bash shell")


def _base_verb(word: str) -> str:
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def _code(ctx: _Context, rng: random.Random, good: bool) -> str:
    low = " " + ctx.user_text.lower() + " "
    lang = next((tag for key, tag in _LANGS if key in low), "python")
    m = re.search(r"\b(?:that|to|which|for)\s+(.+?)(?:[.?!\n]|$)", ctx.user_text)
    words = [w for w in _WORD.findall((m.group(1) if m else ctx.user_text).lower())
             if w.isalpha() and w not in _STOP and len(w) > 2 and w not in _CODE_WORDS][:3]
    if words:  # "returns the n-th Fibonacci number" -> return_fibonacci_number
        words[0] = _base_verb(words[0])
    snake = "_".join(words) or "solve"
    camel = words[0] + "".join(w.title() for w in words[1:]) if words else "solve"
    doc = (m.group(1).strip().rstrip(".") if m else "Do the requested work").capitalize()
    table = words[-1] if words else "items"
    body = {
        "python": (f"def {snake}(items):\n    \"\"\"{doc}.\"\"\"\n    if items is None:\n"
                   "        raise ValueError(\"items is required\")\n    result = []\n    for item in items:\n"
                   "        result.append(item)\n    return result\n"),
        "javascript": (f"function {camel}(items) {{\n  // {doc}.\n"
                       "  if (items == null) throw new Error('items is required');\n"
                       "  return items.map((item) => item);\n}\n"),
        "typescript": (f"export function {camel}<T>(items: T[]): T[] {{\n  // {doc}.\n"
                       "  return items.map((item) => item);\n}\n"),
        "go": (f"// {camel}: {doc}.\nfunc {camel}(items []string) []string {{\n"
               "\tout := make([]string, 0, len(items))\n"
               "\tfor _, item := range items {\n\t\tout = append(out, item)\n\t}\n\treturn out\n}\n"),
        "rust": (f"/// {doc}.\npub fn {snake}(items: &[i64]) -> Vec<i64> {{\n"
                 "    items.iter().copied().collect()\n}\n"),
        "java": (f"/** {doc}. */\npublic static <T> List<T> {camel}(List<T> items) {{\n"
                 "    return new ArrayList<>(items);\n}\n"),
        "sql": f"-- {doc}\nSELECT *\nFROM {table}\nORDER BY 1\nLIMIT 100;\n",
        "bash": f"#!/usr/bin/env bash\n# {doc}\nset -euo pipefail\nfor item in \"$@\"; do\n  echo \"$item\"\ndone\n",
    }[lang]
    intro = {
        "frontier": f"Here's a clean implementation in {lang.title() if lang != 'sql' else 'SQL'}:",
        "balanced": "Here you go:",
        "fast": "",
        "local": "Something like this should work:",
    }[ctx.prof.tier]
    outro = {
        "frontier": "It runs in linear time and validates its input; adjust the loop body to your exact rules.",
        "balanced": "It handles the basic case; add edge-case checks as needed.",
        "fast": "",
        "local": "",
    }[ctx.prof.tier]
    if not good and outro:
        outro = "I haven't tested this, so double-check the edge cases."
    return "\n\n".join(p for p in (intro, f"```{lang}\n{body}```", outro) if p)


_JOKES = (
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "I told my computer I needed a break, and it said: 'No problem, I'll go to sleep.'",
    "Why did the scarecrow win an award? Because he was outstanding in his field.",
    "There are 10 kinds of people: those who understand binary and those who don't.",
    "Why don't skeletons fight each other? They don't have the guts.",
)


def _creative(ctx: _Context, rng: random.Random, good: bool) -> str:
    low = ctx.user_text.lower()
    if "joke" in low:
        joke = rng.choice(_JOKES)
        return joke if ctx.prof.tier in ("fast", "local") else f"Here's one: {joke}"
    m = re.search(r"\babout\s+(.+?)(?:[.?!\n]|$)", ctx.user_text)
    subject = (m.group(1).strip() if m else (_keywords(ctx.user_text) or ["the sea"])[0])
    if "haiku" in low or "poem" in low or "verse" in low:
        lines = [f"Quiet light on {subject}", "the hours lean softly westward", "and the world slows down",
                 "a small wind carries the thought", "further than the road can go"]
        n = 3 if "haiku" in low else {"frontier": 5, "balanced": 4, "fast": 3, "local": 3}[ctx.prof.tier]
        return "\n".join([lines[0], *rng.sample(lines[1:], k=n - 1)])
    beats = [
        f"Once, at the edge of a quiet valley, there lived {subject}.",
        "Every morning began the same way, with mist on the fields and a long walk to the river.",
        "One day something unexpected appeared on the path: a small wooden box, warm to the touch.",
        "Curiosity won, as it usually does, and the lid came open.",
        "Inside was nothing but a note that said: 'Go a little further than yesterday.'",
        "So that is exactly what happened, and the valley never looked quite the same again.",
    ]
    n = {"frontier": 6, "balanced": 5, "fast": 3, "local": 3}[ctx.prof.tier] - (0 if good else 1)
    return " ".join([*beats[: max(2, n - 1)], beats[-1]])
