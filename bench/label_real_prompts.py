"""Build the real-prompt task set (src/modelyard/routing/data/real_prompts.jsonl) from public,
human-written instruction collections, labelled by rules + source categories + a hand review.

    git --git-dir=<self-instruct mirror> show HEAD:data/seed_tasks.jsonl > seed.jsonl
    git --git-dir=<self-instruct mirror> show HEAD:human_eval/user_oriented_instructions.jsonl > user.jsonl
    OA=model/model_eval/manual/data
    git --git-dir=<Open-Assistant mirror> show HEAD:$OA/en_100_text.jsonl > oa.jsonl
    git --git-dir=<Open-Assistant mirror> show HEAD:$OA/prompt_lottery_en_250_text.jsonl >> oa.jsonl
    git --git-dir=<Open-Assistant mirror> show HEAD:$OA/en_100_message.jsonl > turns.jsonl
    git --git-dir=<ANTI-Tony/triforce-reproduce mirror> show HEAD:data/dolly.jsonl > dolly.jsonl
    SRC="seed.jsonl user.jsonl oa.jsonl dolly.jsonl turns.jsonl"   # + bench/real_prompts/dolly15k_sample.jsonl
    .venv/bin/python bench/label_real_prompts.py $SRC              # write the set
    .venv/bin/python bench/label_real_prompts.py $SRC --review     # rule vs final

Sources (docs/ROUTING.md "Task analysis on real prompts"):
- `seed`: data/seed_tasks.jsonl, the 175 seed tasks the Self-Instruct authors wrote by hand (the same
  file Stanford Alpaca ships as seed_tasks.jsonl). Field `is_classification` is a source category.
- `user`: human_eval/user_oriented_instructions.jsonl, 252 expert-written user-oriented tasks. Its
  authors ask that it not be used for training, so every one of them is in the TEST split. Field
  `motivation_app` (Grammarly, Leetcode, Wolfram alpha, ...) gives a source category for some.
- `oasst`: LAION-AI/Open-Assistant (Apache-2.0), model/model_eval/manual/data: 350 English first
  prompts of OpenAssistant conversations (oasst, Apache-2.0) as volunteers typed them; no category.
- `dolly`: 151 prompts of databricks-dolly-15k (CC BY-SA 3.0, written by Databricks employees), the
  Alpaca-templated copy ANTI-Tony/triforce-reproduce commits as data/dolly.jsonl (the full file is a
  Git-LFS pointer in every repository found); the template is dropped, the category is not in it.
- `oasst_turn`: the 380 later user turns (replies to the assistant, not synthetic, English) of the
  100 OpenAssistant trees in en_100_message.jsonl (Apache-2.0): what the gateway classifies mid-chat.
- `dolly15k`: bench/real_prompts/dolly15k_sample.jsonl, 413 rows of databricks-dolly-15k (CC BY-SA
  3.0) with their `category` (a source category), read from the plain-file copy of the full file in
  yogarajjsoshua/FlaskApplication at the character offsets each row records (the file is over the
  4 MiB a fetched snapshot keeps); long contexts left out (`context_dropped`).

A prompt is the instruction, then a blank line and the task's input when it has one (what a user who
pastes the material would send). Labels: the first rule that fires (`rule_label`), checked against the
source category; then every prompt was read by hand and `HAND` records each decision that differs
from the rule (with `None` in `clear` for prompts whose type is a matter of opinion: they stay in the
set, labelled, but out of the clear-type accuracy figure). Split: `user` → test; `seed` and `dolly15k` →
test when the first byte of sha256(prompt) is < 77 (30%), the other sources when it is < 128 (50%),
else train; fixed by the hash, so adding prompts never moves one. A prompt already in an earlier source
is kept once.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

from hand_labels import AMBIGUOUS, HAND

OUT = Path(__file__).resolve().parent.parent / "src/modelyard/routing/data/real_prompts.jsonl"
DOLLY15K = Path(__file__).resolve().parent / "real_prompts/dolly15k_sample.jsonl"
CLEAR_TYPES = ("code_generation", "code_review", "math", "reasoning", "summarization", "translation",
               "extraction", "classification", "creative_writing")

_R = [
    ("translation", r"\btranslat|\binto (english|french|spanish|german|chinese|japanese|italian)\b|"
                    r"\bin (french|spanish|german|chinese|japanese|italian|portuguese)\b"),
    ("summarization", r"\bsummar|\btl;?dr\b|\bbrief (overview|summary)\b|\bkey points\b|\bin (a|one) sentence\b"),
    ("code_review", r"\b(bug|debug|fix|error|refactor|review|improve|optimi[sz]e|explain|what does)\b.*"
                    r"(```|\bdef |[{};]|\bcode\b|\bfunction\b|\bprogram\b)"),
    ("code_generation", r"\b(function|program|code|script|sql|query|regex|regular expression|python|java|"
                        r"javascript|c\+\+|latex|html|css|formula|algorithm|implement)\b"),
    ("math", r"\b(solve|calculate|compute|equation|probability|integral|derivative|arithmetic|sum of|"
             r"how much|how many)\b|\d\s*[-+*/^=]\s*\d"),
    ("classification", r"\b(classify|categori[sz]e|category|categories|sentiment|label|is it (positive|"
                       r"negative)|which (one|type|kind)|offensive|spam)\b"),
    ("extraction", r"\b(extract|list (all|the)|find all|identify (the|all)|pull out|from the (text|"
                   r"passage|article|email|paragraph|sentence))\b"),
    ("creative_writing", r"\b(write|compose|draft|poem|story|essay|email|letter|rewrite|paraphrase|slogan|"
                         r"tweet|caption|title|headline|joke|lyrics|song|generate|create|make up|"
                         r"come up with|suggest a name|invent|edit|proofread|correct)\b"),
    ("reasoning", r"\b(why|compare|contrast|explain|analy[sz]e|pros and cons|should|evaluate|argue|"
                  r"what would happen|difference between|reason|infer|conclude|riddle|puzzle)\b"),
    ("simple_qa", r"^(what|who|when|where|which|how) .{0,80}\?$"),
]
RULES = [(task, re.compile(rx, re.I | re.S)) for task, rx in _R]

# Dolly-15k's own categories mapped to our task types (a source category, checked by hand like the rules).
DOLLY_CATEGORY = {
    "classification": "classification", "closed_qa": "extraction", "information_extraction": "extraction",
    "summarization": "summarization", "creative_writing": "creative_writing", "open_qa": "simple_qa",
    "general_qa": "chat", "brainstorming": "chat",
}

APP_CATEGORY = {
    "Leetcode": "code", "StackOverflow": "code", "Github": "code", "GeeksforGeeks": "code",
    "w3schools": "code", "Wolfram alpha": "math", "(Wolfram alpha)?": "math", "Grammarly": "creative_writing",
    "Blogger": "creative_writing", "Gmail": "creative_writing", "you.com (YouWrite)": "creative_writing",
    "MS Word": "creative_writing", "Google Docs": "creative_writing",
}


def prompt_of(task: dict) -> str:
    inp = task["instances"][0]["input"].strip()
    return task["instruction"].strip() + ("\n\n" + inp if inp else "")


def rule_label(text: str) -> str:
    """The first rule whose pattern hits the instruction part (the pasted input is not read:
    a poem pasted for translation is not a poem request); `chat` when none does."""
    instr = text.split("\n\n", 1)[0]
    for task, rx in RULES:
        if rx.search(instr):
            return task
    return "chat"


def source_category(src: str, task: dict) -> str | None:
    if src == "dolly15k":
        return DOLLY_CATEGORY[task["category"]]
    if src == "seed":
        return "classification" if task.get("is_classification") else None
    return APP_CATEGORY.get(task.get("motivation_app", ""))


def agrees(category: str | None, label: str) -> bool | None:
    if category is None:
        return None
    if category == "code":
        return label in ("code_generation", "code_review")
    return category == label


def split_of(src: str, text: str) -> str:
    if src == "user":
        return "test"
    cut = 77 if src in ("seed", "dolly15k") else 128
    return "test" if hashlib.sha256(text.encode()).digest()[0] < cut else "train"


_ALPACA = re.compile(r"### Instruction:\n(.*?)\n\n(?:### Input:\n(.*?)\n\n)?### Response:", re.S)


def dolly_tasks(path: str) -> list[dict]:
    """The Dolly prompts of an Alpaca-templated copy: the instruction and its input, template dropped."""
    out = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        m = _ALPACA.search(json.loads(line)["prompt"])
        if m is None:
            raise ValueError(f"{path}:{i + 1}: not an Alpaca-templated Dolly prompt")
        out.append({"id": f"dolly_{i}", "instruction": m[1], "instances": [{"input": m[2] or ""}]})
    return out


def dolly15k_tasks(path: str) -> list[dict]:
    """The rows of bench/real_prompts/dolly15k_sample.jsonl: Dolly-15k rows with their category, the context
    kept where it was carried over (`context_dropped` marks rows whose long context was left out)."""
    out = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        out.append({"id": f"dolly15k_{i}", "instruction": row["instruction"], "category": row["category"],
                    "instances": [{"input": row["context"]}]})
    return out


def oasst_turn_tasks(path: str) -> list[dict]:
    """The later user turns (replies to the assistant) of OpenAssistant message trees, in tree order:
    the last user turn is what the gateway classifies, and these are what users write mid-conversation."""
    texts: list[str] = []

    def walk(msg: dict, depth: int) -> None:
        if msg["role"] == "prompter" and depth > 0 and not msg.get("synthetic") and msg["lang"] == "en":
            texts.append(msg["text"].strip())
        for reply in msg.get("replies") or []:
            walk(reply, depth + 1)

    for line in Path(path).read_text(encoding="utf-8").splitlines():
        walk(json.loads(line), 0)
    return [{"id": f"oasst_turn_{i}", "instruction": t, "instances": [{"input": ""}]}
            for i, t in enumerate(dict.fromkeys(texts))]


def sources(seed_path: str, user_path: str, oa_path: str, dolly_path: str,
            turns_path: str, dolly15k_path: str = str(DOLLY15K)) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for src, path in (("seed", seed_path), ("user", user_path), ("oasst", oa_path)):
        for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
            task = json.loads(line)
            if src == "oasst":  # a bare string per line
                task = {"id": f"oasst_{i}", "instruction": task, "instances": [{"input": ""}]}
            out.append((src, task))
    out += [("dolly", t) for t in dolly_tasks(dolly_path)]
    out += [("oasst_turn", t) for t in oasst_turn_tasks(turns_path)]
    out += [("dolly15k", t) for t in dolly15k_tasks(dolly15k_path)]
    return out


def build(*paths: str) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for src, task in sources(*paths):
        text = prompt_of(task)
        if text in seen:  # the same prompt in two sources: kept once, first source wins
            continue
        seen.add(text)
        rule = rule_label(text)
        label = HAND.get(task["id"], rule)
        rows.append({"id": task["id"], "source": src, "text": text, "task": label, "rule": rule,
                     "source_category": source_category(src, task),
                     "clear": task["id"] not in AMBIGUOUS and label in CLEAR_TYPES,
                     "split": split_of(src, text)})
    return rows


def report(rows: list[dict]) -> str:
    n = len(rows)
    rule_ok = sum(r["rule"] == r["task"] for r in rows)
    cat = [r for r in rows if r["source_category"]]
    cat_rule = sum(bool(agrees(r["source_category"], r["rule"])) for r in cat)
    cat_final = sum(bool(agrees(r["source_category"], r["task"])) for r in cat)
    by_src = Counter(r["source"] for r in rows)
    src_ok = Counter(r["source"] for r in rows if r["rule"] == r["task"])
    lines = [f"prompts: {n}; rules = final label: {rule_ok} ({rule_ok / n:.1%})",
             "per source (rules = final / prompts): " + ", ".join(f"{s} {src_ok[s]}/{c}" for s, c in by_src.items()),
             "clear-type per source: " + ", ".join(f"{s} {sum(r['clear'] for r in rows if r['source'] == s)}"
                                                    for s in by_src),
             f"with a source category: {len(cat)}; it agrees with the rule on {cat_rule}, with the final "
             f"label on {cat_final}",
             f"ambiguous (out of the clear-type figure): {sum(not r['clear'] for r in rows)}",
             "final labels: " + ", ".join(f"{t} {c}" for t, c in Counter(r["task"] for r in rows).most_common()),
             "test split: " + ", ".join(f"{t} {c}" for t, c in Counter(
                 r["task"] for r in rows if r["split"] == "test" and r["clear"]).most_common())]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    rows = build(*argv[:5])
    if "--review" in argv:
        for r in rows:
            mark = "" if r["rule"] == r["task"] else f" <- rule {r['rule']}"
            print(f"{r['id']}\t{r['task']}{mark}\t[{r['source_category']}]\t{r['text'][:160]!r}")
    else:
        OUT.write_text("".join(json.dumps({k: r[k] for k in ("id", "source", "split", "task", "clear", "text")},
                                          ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    print(report(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
