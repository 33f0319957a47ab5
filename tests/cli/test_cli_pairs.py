"""`k=v` options (`route --metadata`, `train --param`) share one parser with clear errors."""

from __future__ import annotations

from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.cli.app import parse_pairs


def test_values_are_json_when_they_parse() -> None:
    assert parse_pairs(["k=10", "lr=0.5", "tags=[\"a\"]", "on=true", "name=fast"], "--x") == {
        "k": 10, "lr": 0.5, "tags": ["a"], "on": True, "name": "fast"}


def test_malformed_pair_is_a_one_line_error() -> None:
    r = CliRunner().invoke(app, ["route", "hello", "--metadata", "oops", "--json"])
    assert r.exit_code == 2
    assert "--metadata expects key=value, got 'oops'" in r.output
    assert "Traceback" not in r.output
