"""The text features' fast regexes match exactly what the plain ones they replaced match.

textfeatures.py rewrote two patterns for speed on long prompts (a number pattern that starts with
a digit; one literal-first search per code marker instead of one alternation). Router files store
weights for these features, so the values must not move: these tests compare the new patterns with
the original ones, kept here as the reference, on the fixture prompts, the synthetic sets, long
concatenations and edge cases written to hit every branch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from modelyard.routing.learned import textfeatures as tf
from modelyard.routing.learned.textfeatures import FEATURE_NAMES, text_features

ROOT = Path(__file__).parents[3]
REF_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*")
REF_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|#include|\bfunction\b|=>", re.M)

EDGE = ["", "a12 b3.4,5 x1y2 12a 3. 4,", "¹²3 ٣٤ x٣ 7,000.50 v2.0.1", "def f(): return 1;", "undef x",
        "classy classes class", "returns return_ returned", "xfunction function_x functional",
        "(function)", "{\n", "x; \n y", "x;\ty", "a}", "it's Don'T rock'N", "```", "=>", "= >",
        "#include <x>", "ünïcödé déf return", "ßdef x", "_return", "1return", "réturn", "\u00e9function"]


def prompts() -> list[str]:
    out = list(EDGE)
    for f in [Path(os.environ["MODELYARD_TEST_ROUTING_SMALL"]), *sorted((ROOT / "bench" / "data").glob("*.jsonl"))]:
        out += [json.loads(line)["prompt"] for line in f.read_text().splitlines() if line.strip()]
    out += ["\n\n".join(out[i:i + 40]) for i in range(0, len(out), 40)]  # long prompts
    return out


def test_number_pattern_finds_the_same_numbers() -> None:
    for p in prompts():
        assert tf._NUMBER.findall(p) == REF_NUMBER.findall(p), p[:80]


def test_code_markers_agree_with_the_single_alternation() -> None:
    seen = set()
    for p in prompts():
        new = any(c.search(p) for c in tf._CODE)
        assert new == bool(REF_CODE.search(p)), p[:80]
        seen.add(new)
    assert seen == {True, False}  # both answers occur, so the comparison means something


@pytest.mark.parametrize("text", ["def  f", "x = 1 =>", "return", "function", "a;", "plain prose."])
def test_code_flag_in_the_feature_vector(text: str) -> None:
    code = text_features(text)[FEATURE_NAMES.index("has_code")]
    assert code == (1.0 if REF_CODE.search(text) else 0.0)
