"""Synthetic routing data of task kinds we have no real model answers for — clearly not real labels.

mmlu_train.jsonl has real answers of two models, but only to multiple-choice knowledge questions.
To check that a router trained on it *transfers* (ranks prompts of other kinds by how much the strong
model helps, rather than recognising MMLU subjects), this module generates prompts whose difficulty
is controlled, and scores them with a stated generative model of correctness:

- **math**: multi-step word problems (1–8 chained operations, small → 4-digit numbers and decimals,
  0–2 irrelevant facts with numbers), 0/1 scores;
- **writing**: open-ended writing requests with 0–5 constraints of graded hardness (a tone is easy,
  a word list medium, a lipogram or fixed words per sentence hard), 1–10 judge-style scores;
- **reasoning**: ordering puzzles (3–7 people, direct or indirect clues) and conditional chains
  (1–6 links, negations), 0/1 scores.

Each prompt gets a latent difficulty d ∈ [0, 1] from its generator knobs (never from its text). The
model of correctness: for 0/1 kinds, P(correct) = σ(a − b·d + u) with the weak model's slope b larger
than the strong model's (it falls behind faster as problems get harder) and u ~ N(0, σ_u) a per-prompt
quirk shared by both models; for writing, score = round(μ − b·d + u + ε) clipped to 1–10. Nuisance
knobs that do not change d — topic, names, a polite or chatty preamble, background notes — vary
the text (and the embedding) independently of difficulty, so a router that only tracks length or
topic is penalised. What this can show: whether a router's score orders prompts of a new kind by
the difficulty knobs we believe matter. What it cannot: whether real models fail where this model
says they do (the labels encode our assumptions; see docs/LEARNED_ROUTING.md).

    python -m modelyard.eval.synthetic --out bench/data [--n 400] [--seed 7]

Output is deterministic for a seed. Records carry `difficulty` and `knobs` next to the usual fields.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson

STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"


@dataclass(frozen=True)
class Correctness:
    """P(correct) = σ(a − b·d + u) per model (binary), or a 1–10 score μ − b·d + u + ε (graded)."""

    strong_a: float
    strong_b: float
    weak_a: float
    weak_b: float
    shared_sd: float  # σ_u: how much a prompt's quirks (not its knobs) move both models
    graded: bool = False
    noise_sd: float = 0.0  # graded only: per-model judge noise ε

    def sample(self, d: float, rng: np.random.Generator) -> dict[str, float]:
        u = rng.normal(0.0, self.shared_sd)
        out = {}
        for name, a, b in ((STRONG, self.strong_a, self.strong_b), (WEAK, self.weak_a, self.weak_b)):
            if self.graded:
                out[name] = float(min(10, max(1, round(a - b * d + u + rng.normal(0.0, self.noise_sd)))))
            else:
                out[name] = float(rng.random() < 1.0 / (1.0 + math.exp(-(a - b * d + u))))
        return out


# The stated models. Binary kinds: at d = 0 both are right ~95 %+; at d = 1 the strong model ~60 %
# (math) / ~40 % (reasoning), the weak one ~10 % / ~3 %. Writing: at d = 0 both score ~9; at d = 1
# the strong one ~7, the weak one ~4 (on an MT-Bench-like judge scale).
MODELS: dict[str, Correctness] = {
    "math": Correctness(4.0, 3.6, 3.3, 5.5, shared_sd=0.7),
    "reasoning": Correctness(3.5, 4.0, 3.0, 6.5, shared_sd=0.7),
    "writing": Correctness(9.3, 2.2, 9.1, 5.0, shared_sd=0.6, graded=True, noise_sd=0.8),
}

NAMES = ("Maya", "Liam", "Priya", "Tomás", "Aisha", "Kenji", "Olga", "Dmitri", "Fatima", "Noah", "Chloé",
         "Mateo", "Zara", "Ibrahim", "Elena", "Sam")
ITEMS = (("stickers", "sticker"), ("apples", "apple"), ("marbles", "marble"), ("books", "book"),
         ("cupcakes", "cupcake"), ("bolts", "bolt"), ("seedlings", "seedling"), ("postcards", "postcard"),
         ("bricks", "brick"), ("candles", "candle"), ("tickets", "ticket"), ("shells", "shell"))
PREAMBLES = ("", "", "", "Quick question: ", "Please solve this and show your work. ",
             "Here's one from my kid's homework, I want to check the answer. ",
             "I'm preparing a worksheet for my students and want to double-check the answer key before I print "
             "it tomorrow morning, so please be careful. ", "Can you help? ")
DISTRACTORS = ("{p}'s sister is {n} years old.", "The shop is {n} miles from {p}'s house.",
               "It took {p} {n} minutes to get there.", "{p}'s neighbour owns {n} cats.",
               "The bus that {p} takes has {n} seats.", "{p} has lived in the town for {n} years.")
FRACTIONS = ((2, "half"), (3, "a third"), (4, "a quarter"), (5, "a fifth"))


def _num(rng: np.random.Generator, mag: int) -> int:
    lo, hi = ((2, 12), (12, 99), (120, 2400))[mag]
    return int(rng.integers(lo, hi + 1))


def math_problem(rng: np.random.Generator) -> tuple[str, float, dict[str, Any]]:
    """A word problem of `steps` chained operations on one quantity; the answer is computed, not guessed."""
    steps = int(rng.integers(1, 9))
    mag = int(rng.integers(0, 3))
    n_distract = int(rng.integers(0, 3))
    p = str(rng.choice(NAMES))
    items, item = ITEMS[int(rng.integers(len(ITEMS)))]
    v = _num(rng, mag)
    sents = [f"{p} has {v} {items}."]
    for _ in range(steps):
        op = str(rng.choice(["add", "groups", "sub", "frac", "mult", "percent"]))
        if op == "frac":
            den, word = FRACTIONS[int(rng.integers(len(FRACTIONS)))]
            if v % den == 0 and v >= den:
                sents.append(f"{p} gives away {word} of the {items}.")
                v -= v // den
                continue
            op = "add"
        if op == "percent" and v % 20 == 0:
            pct = int(rng.choice([10, 15, 20, 25, 30, 40, 50])) if v % 100 == 0 else int(rng.choice([10, 20, 50]))
            if v * pct % 100 == 0:
                sents.append(f"{p} then sells {pct}% of them.")
                v -= v * pct // 100
                continue
        if op in ("percent", "mult"):
            k = int(rng.choice([2, 3]))
            sents.append(f"Over the next month the number of {items} {p} has grows {['', '', 'two', 'three'][k]}fold.")
            v *= k
        elif op == "groups":
            g, k = int(rng.integers(2, 9)), _num(rng, min(mag, 1))
            sents.append(f"{p} buys {g} boxes with {k} {items} in each box.")
            v += g * k
        elif op == "sub" and v > 2:
            k = int(rng.integers(1, v))
            sents.append(f"{p} loses {k} {items if k != 1 else item} on the way home.")
            v -= k
        else:
            k = _num(rng, mag)
            sents.append(f"A friend gives {p} {k} more {items}.")
            v += k
    for _ in range(n_distract):
        i = int(rng.integers(1, len(sents) + 1))
        sents.insert(i, str(rng.choice(DISTRACTORS)).format(p=p, n=_num(rng, 1)))
    money = mag == 2 and rng.random() < 0.5
    if money:
        price = round(float(rng.integers(105, 995)) / 100, 2)
        question = f"If {p} sells every {item} for ${price:.2f}, how much money does {p} make?"
        answer: float = round(v * price, 2)
    else:
        question = f"How many {items} does {p} have now?"
        answer = v
    d = 0.6 * (steps - 1) / 7 + 0.25 * (mag + money * 0.5) / 2.5 + 0.15 * n_distract / 2
    prompt = str(rng.choice(PREAMBLES)) + " ".join(sents) + " " + question
    return prompt, min(d, 1.0), {"steps": steps, "magnitude": mag, "distractors": n_distract, "answer": answer}


FORMS = ("poem", "short story", "email to a colleague", "blog post", "product description", "speech",
         "cover letter", "dialogue between two friends", "diary entry", "restaurant review")
TOPICS = ("the first snow of winter", "a lost umbrella", "moving to a new city", "a robot learning to cook",
          "the history of tea", "a rainy Monday", "an old lighthouse", "learning to swim as an adult",
          "a neighbourhood garden", "the last day of school", "a broken clock", "electric bicycles")
BACKGROUND = ("For context, this is for a small community newsletter that goes out every month to about "
              "three hundred households, most of them families with young children.",
              "Some background: my manager asked for this at short notice and I have not written anything "
              "like it before, so I would appreciate something I can use as it is.",
              "It is for a class I am taking.", "My friend suggested I ask you.")
# (template, hardness): hardness adds to the latent difficulty
CONSTRAINTS: tuple[tuple[str, float], ...] = (
    ("Use a {tone} tone.", 0.05),
    ("Keep it under {n} words.", 0.1),
    ("Write it from the point of view of {pov}.", 0.15),
    ("Give it a title.", 0.05),
    ("Include the words '{w1}', '{w2}' and '{w3}'.", 0.25),
    ("Format the answer as JSON with the keys \"title\" and \"body\".", 0.3),
    ("Organise it in exactly {k} paragraphs.", 0.3),
    ("End with a question to the reader and use no exclamation marks.", 0.35),
    ("Start every sentence with the letter '{L}'.", 0.6),
    ("Make the first letters of the lines spell '{word}'.", 0.65),
    ("Write it in iambic pentameter with an ABAB rhyme scheme.", 0.7),
    ("Make every sentence exactly {m} words long.", 0.8),
    ("Do not use the letter 'e' anywhere in the text.", 0.9),
)
TONES = ("cheerful", "formal", "melancholy", "sarcastic", "warm")
POVS = ("a cat", "a retired sailor", "the moon", "a ten-year-old", "a tired barista")
WORDS = ("lantern", "orbit", "velvet", "ledger", "thunder", "pebble", "harbour", "saffron", "glacier")


def writing_prompt(rng: np.random.Generator) -> tuple[str, float, dict[str, Any]]:
    """A writing request with 0–5 constraints; difficulty = summed hardness of the constraints."""
    n_c = int(rng.integers(0, 6))
    chosen = sorted(rng.choice(len(CONSTRAINTS), size=n_c, replace=False).tolist())
    w = rng.choice(WORDS, size=3, replace=False)
    fill = {"tone": rng.choice(TONES), "n": int(rng.choice([80, 150, 200, 300])), "pov": rng.choice(POVS),
            "w1": w[0], "w2": w[1], "w3": w[2], "k": int(rng.integers(2, 6)),
            "L": "BCDFGHMPST"[int(rng.integers(10))], "word": rng.choice(["SPRING", "OCEAN", "TIGER", "LIGHT"]),
            "m": int(rng.integers(5, 10))}
    form = str(rng.choice(FORMS))
    parts = [f"Write {'an' if form[0] in 'aeiou' else 'a'} {form} about {rng.choice(TOPICS)}."]
    parts += [CONSTRAINTS[i][0].format(**fill) for i in chosen]
    if rng.random() < 0.35:
        parts.insert(int(rng.integers(0, 2)), str(rng.choice(BACKGROUND)))
    d = min(1.0, sum(CONSTRAINTS[i][1] for i in chosen) / 2.0)
    return " ".join(parts), d, {"constraints": n_c, "hardness": [CONSTRAINTS[i][1] for i in chosen]}


PEOPLE = ("Ana", "Ben", "Carla", "Dev", "Eli", "Fay", "Gus")
ORD = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")


def _ahead(q: dict[str, int], a: str, b: str) -> bool:
    return q[a] < q[b]


def _gap(q: dict[str, int], a: str, b: str, gap: int) -> bool:
    return abs(q[a] - q[b]) - 1 == gap


def _at(q: dict[str, int], a: str, k: int) -> bool:
    return q[a] == k


def _not_at(q: dict[str, int], a: str, k: int) -> bool:
    return q[a] != k


def _ordering(rng: np.random.Generator) -> tuple[str, float, dict[str, Any]]:
    """Who finished k-th in a race, from clues that pin down one order (brute force over n!)."""
    n = int(rng.integers(3, 8))
    people = list(PEOPLE[:n])
    truth = [people[i] for i in rng.permutation(n)]
    pos = {p: i for i, p in enumerate(truth)}
    indirect_share = float(rng.choice([0.0, 0.5, 1.0]))
    perms = list(itertools.permutations(people))
    clues: list[tuple[str, Callable[[dict[str, int]], bool]]] = []
    n_indirect = 0
    clue: tuple[str, Callable[[dict[str, int]], bool]]
    while len(perms) > 1 and len(clues) < 4 * n:
        a, b = (str(x) for x in rng.choice(people, size=2, replace=False))
        if rng.random() < indirect_share:
            kind = int(rng.integers(3))
            if kind == 0:
                first, second = (a, b) if pos[a] < pos[b] else (b, a)
                clue = (f"{first} finished ahead of {second}.", partial(_ahead, a=first, b=second))
            elif kind == 1:
                gap = abs(pos[a] - pos[b]) - 1
                clue = (f"Exactly {gap} runner{'s' if gap != 1 else ''} finished between {a} and {b}.",
                        partial(_gap, a=a, b=b, gap=gap))
            else:
                wrong = int(rng.choice([i for i in range(n) if i != pos[a]]))
                clue = (f"{a} did not finish {ORD[wrong]}.", partial(_not_at, a=a, k=wrong))
            indirect = True
        else:
            indirect = False
            clue = (f"{a} finished {ORD[pos[a]]}.", partial(_at, a=a, k=pos[a]))
        keep = [pm for pm in perms if clue[1]({p: i for i, p in enumerate(pm)})]
        if len(keep) < len(perms):  # only clues that narrow the orders down are kept (and counted)
            clues.append(clue)
            n_indirect += indirect
            perms = keep
    k = int(rng.integers(n))
    share = n_indirect / max(len(clues), 1)
    prompt = (f"{', '.join(people[:-1])} and {people[-1]} ran a race; there were no ties. "
              + " ".join(c[0] for c in clues) + f" Who finished {ORD[k]}?")
    d = 0.55 * (n - 3) / 4 + 0.45 * share
    return prompt, d, {"people": n, "clues": len(clues), "indirect_share": round(share, 2), "answer": truth[k]}


CHAIN = ("the river floods", "the bridge closes", "the market opens late", "the bakery sells out",
         "the festival is postponed", "the school bus takes the long road", "the mayor gives a speech",
         "the museum stays open", "the lights on Main Street stay on")


def _chain(rng: np.random.Generator) -> tuple[str, float, dict[str, Any]]:
    """A chain of if-then rules (some negated, shuffled); does the last event follow from the first?"""
    depth = int(rng.integers(1, 7))
    events = [str(e) for e in rng.choice(CHAIN, size=depth + 1, replace=False)]
    negs = 0
    rules = []
    for i in range(depth):
        if rng.random() < 0.35:
            rules.append(f"If it is not the case that {events[i + 1]}, then it is not the case that {events[i]}.")
            negs += 1
        else:
            rules.append(f"If {events[i]}, then {events[i + 1]}.")
    order = rng.permutation(depth)
    reverse = rng.random() < 0.3  # asks the converse: does not follow
    q_from, q_to = (events[-1], events[0]) if reverse else (events[0], events[-1])
    prompt = (" ".join(rules[i] for i in order) + f" Suppose {q_from}. Does it follow that {q_to}? "
              "Answer yes, no, or cannot be determined, and explain.")
    d = 0.65 * (depth - 1) / 5 + 0.25 * min(negs, 2) / 2 + 0.1 * reverse
    return prompt, d, {"depth": depth, "negations": negs, "converse": bool(reverse),
                       "answer": "cannot be determined" if reverse else "yes"}


def reasoning_puzzle(rng: np.random.Generator) -> tuple[str, float, dict[str, Any]]:
    return _ordering(rng) if rng.random() < 0.5 else _chain(rng)


GENERATORS: dict[str, Callable[[np.random.Generator], tuple[str, float, dict[str, Any]]]] = {
    "math": math_problem, "writing": writing_prompt, "reasoning": reasoning_puzzle}


def generate(kind: str, n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n scored records of one kind (deterministic for a seed)."""
    rng = np.random.default_rng([seed, list(GENERATORS).index(kind)])
    model = MODELS[kind]
    out = []
    for i in range(n):
        prompt, d, knobs = GENERATORS[kind](rng)
        out.append({"id": f"synthetic/{kind}/{i}", "prompt": prompt, "source": f"synthetic/{kind}",
                    "scores": model.sample(d, rng), "difficulty": round(d, 4), "knobs": knobs})
    return out


def write(out_dir: str | Path, n: int = 400, seed: int = 7, kinds: Sequence[str] = tuple(GENERATORS)) -> list[Path]:
    paths = []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        path = Path(out_dir) / f"synthetic_{kind}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in generate(kind, n, seed)))
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/data")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    for p in write(a.out, a.n, a.seed):
        print(p)


if __name__ == "__main__":
    main()
