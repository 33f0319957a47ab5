"""The synthetic routing sets: reproducible from their generator, labelled by the stated model of
correctness, and usable by the transfer check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
import pytest

from modelyard.eval import transfer
from modelyard.eval.synthetic import GENERATORS, MODELS, STRONG, WEAK, generate, write
from modelyard.routing.learned.data import load_jsonl

BENCH_DATA = Path(__file__).parents[2] / "bench" / "data"


def test_committed_sets_are_exactly_what_the_generator_writes(tmp_path: Path) -> None:
    for path in write(tmp_path):  # the defaults the docs' command uses
        committed = BENCH_DATA / path.name
        assert committed.read_bytes() == path.read_bytes(), f"regenerate {committed}"


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_records_are_valid_routing_data_with_knobs(kind: str, tmp_path: Path) -> None:
    recs = generate(kind, 60, seed=3)
    assert recs == generate(kind, 60, seed=3) and recs != generate(kind, 60, seed=4)
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    ex = load_jsonl(path)
    assert len({e.prompt for e in ex}) > 50
    lo, hi = (1.0, 10.0) if MODELS[kind].graded else (0.0, 1.0)
    for e, r in zip(ex, recs, strict=True):
        assert set(e.scores) == {STRONG, WEAK} and all(lo <= v <= hi for v in e.scores.values())
        assert 0.0 <= r["difficulty"] <= 1.0 and r["knobs"]


def test_math_difficulty_follows_the_knobs() -> None:
    recs = generate("math", 400)
    steps = np.array([r["knobs"]["steps"] for r in recs])
    d = np.array([r["difficulty"] for r in recs])
    assert np.corrcoef(steps, d)[0, 1] > 0.7
    sentences = np.array([r["prompt"].count(".") for r in recs])
    assert np.corrcoef(steps, sentences)[0, 1] > 0.5  # more steps read as a longer problem


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_the_strong_model_falls_behind_less_as_difficulty_rises(kind: str) -> None:
    recs = generate(kind, 400)
    d = np.array([r["difficulty"] for r in recs])
    gap = np.array([r["scores"][STRONG] - r["scores"][WEAK] for r in recs])
    easy, hard = d <= np.quantile(d, 1 / 3), d >= np.quantile(d, 2 / 3)
    assert gap[hard].mean() > gap[easy].mean() + 0.1 * (9 if MODELS[kind].graded else 1)
    strong = np.array([r["scores"][STRONG] for r in recs])
    assert strong[easy].mean() > strong[hard].mean()


def test_transfer_reports_every_router_and_the_references(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = Path(os.environ["MODELYARD_TEST_ROUTING_SMALL"])
    (math_file,) = write(tmp_path, n=40, kinds=("math",))
    transfer.main(["--train", str(train), "--strong", STRONG, "--weak", WEAK, "--embedding", "hash-ngram-v1",
                   "--router", "classifier", "--router", "knn:k=20", "--eval", str(math_file),
                   "--synthetic-seeds", "1,2", "--synthetic-n", "30"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["router", "synthetic_math", "synthetic_writing", "synthetic_reasoning"]
    rows = {ln[:34].strip(): ln[34:] for ln in lines[1:]}
    assert list(rows) == ["classifier", "knn:k=20", "words (longer → strong)", "difficulty (generator's latent)",
                          "oracle"]
    for cells in rows.values():
        # the math file and seeds 1, 2 of math are one group (mean ± sd of 3); writing, reasoning: 2 seeds
        assert cells.count("±") == 3 and all(0.0 <= float(c) <= 1.5 for c in cells.replace("±", " ").split())
    assert float(rows["oracle"].split()[0]) > 0.9
    assert transfer.difficulties(train) is None
