"""`modelyard train | eval | calibrate` on a small MMLU fixture with the real MiniLM embeddings."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from learnkit import MMLU_SMALL as MMLU_FULL_FIXTURE
from learnkit import STRONG, WEAK, write_synthetic
from typer.testing import CliRunner

from modelyard.cli import app

runner = CliRunner()
MMLU_SMALL = MMLU_FULL_FIXTURE


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 prompts: enough for a stable table, few enough that MiniLM embeds them in about a second."""
    path = tmp_path_factory.mktemp("cli") / "mmlu48.jsonl"
    path.write_text("\n".join(MMLU_FULL_FIXTURE.read_text().splitlines()[:48]) + "\n")
    return path


def _run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, small: Path) -> Path:
    out = tmp_path_factory.mktemp("cli") / "clf.npz"
    _run("train", "--data", str(small), "--router", "classifier", "--strong", STRONG, "--weak", WEAK,
         "-o", str(out))
    return out


def test_train_is_deterministic(trained: Path, small: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.npz"
    _run("train", "--data", str(small), "--router", "classifier", "--strong", STRONG, "--weak", WEAK,
         "-o", str(again))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for router, scores in ((trained, a), (again, b)):
        _run("eval", "--data", str(small), "--router", str(router), "--strong", STRONG, "--weak", WEAK,
             "--scores-out", str(scores))
    assert a.read_bytes() == b.read_bytes()


def test_eval_prints_the_table_and_writes_scores_and_plot(trained: Path, small: Path, tmp_path: Path) -> None:
    scores, plot = tmp_path / "scores.jsonl", tmp_path / "curve.png"
    out = _run("eval", "--data", str(small), "--router", str(trained), "--strong", STRONG, "--weak", WEAK,
               "--scores-out", str(scores), "--plot", str(plot))
    for needle in ("APGR", "CPT(50%)", "CPT(80%)", "random", "oracle", "always-strong", "always-weak",
                   "classifier", "strong calls"):
        assert needle in out
    rows = [orjson.loads(line) for line in scores.read_text().splitlines()]
    ids = [orjson.loads(line)["id"] for line in small.read_text().splitlines()]
    assert [r["id"] for r in rows] == ids and all(isinstance(r["score"], float) for r in rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibrate_prints_a_threshold_for_the_share(trained: Path, small: Path) -> None:
    res = runner.invoke(app, ["calibrate", "--router", str(trained), "--data", str(small),
                              "--strong-share", "0.3"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    threshold = float(lines[-1])
    assert "gpt-4-1106-preview 29.2%" in res.output  # round(0.3 × 48) = 14 prompts
    # without data: the training predictions stored in the file
    res2 = runner.invoke(app, ["calibrate", "--router", str(trained), "--strong-share", "0.3"])
    assert res2.exit_code == 0 and abs(float(res2.stdout.strip().splitlines()[-1]) - threshold) < 0.2


def test_budget_calibration_and_n_model_training(tmp_path: Path) -> None:
    data = write_synthetic(tmp_path / "three.jsonl", three=True)
    out = tmp_path / "mf.npz"
    text = _run("train", "--data", str(data), "--router", "mf", "-o", str(out), "--embedding", "hash-ngram-v1")
    assert "models: strong, weak, mid" in text
    res = runner.invoke(app, ["calibrate", "--router", str(out), "--budget", "0.004", "--write"])
    assert res.exit_code == 0, res.output
    assert "mean cost $0.00" in res.output and "stored in" in res.output


@pytest.mark.parametrize("args, needle", [
    (["train", "--data", "nope.jsonl", "--router", "knn", "-o", "x.npz"], "nope.jsonl: file not found"),
    (["train", "--data", str(MMLU_SMALL), "--router", "forest", "-o", "x.npz"], "--router must be one of"),
    (["train", "--data", str(MMLU_SMALL), "--router", "knn", "--strong", STRONG, "-o", "x.npz"], "name both"),
    (["train", "--data", str(MMLU_SMALL), "--router", "knn", "--strong", "gpt-5", "--weak", WEAK, "-o", "x.npz"],
     "has no score for 'gpt-5'"),
    (["eval", "--data", str(MMLU_SMALL), "--router", "missing.npz", "--strong", STRONG, "--weak", WEAK],
     "router file missing.npz not found"),
    (["calibrate", "--router", "missing.npz", "--strong-share", "0.3"], "not found"),
    (["calibrate", "--router", "missing.npz"], "exactly one of --strong-share or --budget"),
])
def test_cli_errors_are_one_line(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_train_defaults_to_the_best_cross_validated_kind(small: Path, tmp_path: Path) -> None:
    from modelyard.routing.learned.base import EMBED_TOKENS, load_router

    out = tmp_path / "default.npz"
    _run("train", "--data", str(small), "--strong", STRONG, "--weak", WEAK, "--embedding", "hash-ngram-v1",
         "-o", str(out))
    r = load_router(out)
    assert (r.kind, r.base, r.feat_weight > 0, r.embed_tokens) == ("knn", True, True, EMBED_TOKENS)  # type: ignore[attr-defined]
