"""`modelyard catalog import`: a LiteLLM price map → a catalog file a config lists in `catalog_files:`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.gateway import Gateway
from modelyard.loader import load_config
from modelyard.types import Usage

PRICE_MAP = {
    "sample_spec": {"input_cost_per_token": 0},
    "my-claude": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                  "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
                  "cache_creation_input_token_cost_above_1hr": 6e-06,
                  "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
                  "max_input_tokens": 1000000, "max_output_tokens": 64000, "litellm_provider": "anthropic",
                  "mode": "chat", "supports_function_calling": True, "supports_vision": True},
    "an-embedder": {"input_cost_per_token": 1e-07, "output_cost_per_token": 0, "mode": "embedding"},
}


def test_import_then_use_from_a_config(tmp_path: Path) -> None:
    src = tmp_path / "prices.json"
    src.write_text(json.dumps(PRICE_MAP))
    out = tmp_path / "my-catalog.yaml"
    res = CliRunner().invoke(app, ["catalog", "import", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote 1 cards" in res.output
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("catalog_files: [my-catalog.yaml]\n"
                        "deployments:\n  d: {provider: sim, model: my-claude}\n"
                        f"server: {{request_log: {{path: {tmp_path / 'l.db'}}}}}\n")
    gw = Gateway(load_config(cfg_file), source=str(cfg_file))
    card = gw.deployments["d"].card
    assert (card.input_per_m, card.output_per_m, card.cached_input_per_m, card.cache_write_per_m) == \
        pytest.approx((3.0, 15.0, 0.3, 3.75))
    assert card.context_window == 1_000_000 and card.max_output == 64000 and "tools" in card.capabilities
    assert card.cost(Usage(input_tokens=300_000)) == pytest.approx(300_000 * 6.0 / 1e6)
    assert card.cache_write_1h_per_m == pytest.approx(6.0)  # LiteLLM's 1-hour write price
    assert card.cost(Usage(input_tokens=100, cache_write_tokens=100, cache_write_1h_tokens=100)) \
        == pytest.approx(100 * 6.0 / 1e6)


def test_import_refuses_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    res = CliRunner().invoke(app, ["catalog", "import", str(bad), "-o", str(tmp_path / "o.yaml")])
    assert res.exit_code == 2 and "expected a JSON object" in res.output
