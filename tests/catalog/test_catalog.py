"""The shipped model cards and the catalog's lookup, cost and override rules."""

from __future__ import annotations

import pytest

from modelyard.catalog import CAPABILITIES, Catalog, ModelCard, _card, builtin_cards, unknown_card
from modelyard.config import parse_shapes
from modelyard.types import Usage

TASKS = {"general", "code_generation", "code_review", "math", "reasoning", "summarization", "translation",
         "extraction", "classification", "creative_writing", "simple_qa", "chat"}

EXPECTED = {
    # the sim fleet
    "sim/frontier", "sim/balanced", "sim/fast", "sim/local",
    # OpenAI
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
    "gpt-5", "gpt-5-mini", "gpt-5-nano",
    # Anthropic
    "claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku-latest",
    # Google
    "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
    # Mistral
    "mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "codestral-latest",
    # hosted Llama, DeepSeek
    "llama-3.3-70b-versatile", "llama-3.1-8b-instant", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "deepseek-chat", "deepseek-reasoner",
}

CARDS = builtin_cards()


def test_every_expected_card_ships() -> None:
    assert not EXPECTED - set(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_is_sane(name: str) -> None:
    card = CARDS[name]
    assert card.name == name and card.provider
    assert card.input_per_m >= 0 and card.output_per_m >= 0
    if not card.capabilities:  # an embedding model: priced per input token, no output
        assert card.output_per_m == 0 and card.context_window >= 256
        return
    assert card.output_per_m >= card.input_per_m  # true of every list price we ship
    if card.cached_input_per_m is not None:
        assert 0 <= card.cached_input_per_m <= card.input_per_m
    assert 4096 <= card.context_window <= 2_000_000
    assert 1024 <= card.max_output <= card.context_window
    assert card.capabilities <= CAPABILITIES and "streaming" in card.capabilities
    assert "general" in card.quality and set(card.quality) <= TASKS
    assert all(0 < q <= 1 for q in card.quality.values())
    assert card.ttft_ms > 0 and card.tokens_per_s > 0


def test_a_few_published_prices() -> None:
    """Spot checks against the providers' price pages (see the date in cards.yaml)."""
    def prices(name: str) -> tuple[float, float, float | None]:
        c = CARDS[name]
        return c.input_per_m, c.output_per_m, c.cached_input_per_m

    assert prices("gpt-4o") == (2.50, 10.00, 1.25)
    assert prices("gpt-4o-mini") == (0.15, 0.60, 0.075)
    assert prices("gpt-5") == (1.25, 10.00, 0.125)
    assert prices("claude-sonnet-4-5") == (3.00, 15.00, 0.30)
    assert prices("claude-opus-4-1") == (15.00, 75.00, 1.50)
    assert prices("gemini-2.5-flash") == (0.30, 2.50, 0.03)
    assert prices("deepseek-chat") == (0.28, 0.42, 0.028)
    assert prices("mistral-small-latest")[2] is None  # no cache price published: input price applies


def test_quality_priors_order_the_tiers() -> None:
    q = {name: CARDS[name].quality_for("general") for name in CARDS}
    assert q["sim/frontier"] > q["sim/balanced"] > q["sim/fast"] > q["sim/local"]
    assert q["gpt-5"] > q["gpt-5-mini"] > q["gpt-5-nano"]
    assert q["claude-sonnet-4-5"] > q["claude-haiku-4-5"] > q["claude-3-5-haiku-latest"]
    assert CARDS["codestral-latest"].quality_for("code_generation") > q["codestral-latest"]
    assert CARDS["gpt-4o"].quality_for("no_such_task") == q["gpt-4o"]  # unknown task: the general prior


def test_cost_is_exact_with_cached_tokens() -> None:
    card = CARDS["gpt-4o"]  # $2.50 in, $1.25 cached, $10.00 out per 1M
    usage = Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=400)
    assert card.cost(usage) == (600 * 2.50 + 400 * 1.25 + 500 * 10.00) / 1_000_000 == 0.007
    assert card.cost(Usage(input_tokens=1_000_000)) == 2.50
    assert card.cost(Usage(output_tokens=1_000_000)) == 10.00
    assert card.cost(Usage()) == 0.0


def test_cost_without_cached_price_bills_cached_tokens_at_input_price() -> None:
    card = CARDS["mistral-small-latest"]
    assert card.cost(Usage(input_tokens=1000, cached_input_tokens=1000)) == card.cost(Usage(input_tokens=1000))


def test_cost_clamps_cached_to_input() -> None:
    card = CARDS["claude-haiku-4-5"]  # $1 in, $0.10 cached
    assert card.cost(Usage(input_tokens=100, cached_input_tokens=500)) == pytest.approx(100 * 0.10 / 1e6)


def test_free_local_card_costs_nothing() -> None:
    assert CARDS["sim/local"].cost(Usage(input_tokens=10**6, output_tokens=10**6)) == 0.0


def test_overrides_replace_fields_and_keep_the_rest() -> None:
    cat = Catalog({"gpt-4o": {"input_per_m": 2.0, "context_window": 64000, "tokens_per_s": None}})
    card = cat.get("gpt-4o")
    assert card is not None and card.input_per_m == 2.0 and card.context_window == 64000
    base = CARDS["gpt-4o"]
    assert (card.output_per_m, card.cached_input_per_m, card.tokens_per_s) == (
        base.output_per_m, base.cached_input_per_m, base.tokens_per_s)
    assert CARDS["gpt-4o"].input_per_m == 2.50  # the shipped card is untouched


def test_overrides_add_new_cards() -> None:
    cat = Catalog({"my-finetune": {"input_per_m": 0.5, "output_per_m": 1.5, "capabilities": ["tools", "streaming"],
                                   "context_window": 32000, "quality": {"general": 0.7}}})
    card = cat.get("my-finetune")
    assert card is not None and card.provider == "custom"
    assert card.capabilities == frozenset({"tools", "streaming"})
    assert card.cost(Usage(input_tokens=2_000_000, output_tokens=1_000_000)) == pytest.approx(2.5)
    assert len(cat) == len(CARDS) + 1 and "my-finetune" in cat


def test_overrides_from_a_config_file_section() -> None:
    cfg = parse_shapes({"catalog": {"gpt-4o-mini": {"output_per_m": 0.5},
                                    "local-llama": {"provider": "ollama", "context_window": 8192}}})
    cat = Catalog({name: o.model_dump() for name, o in cfg.catalog.items()})
    mini = cat.get("gpt-4o-mini")
    assert mini is not None and mini.output_per_m == 0.5 and mini.input_per_m == 0.15
    llama = cat.get("local-llama")
    assert llama is not None and llama.provider == "ollama" and llama.input_per_m == 0.0


def test_unknown_capability_rejected_for_new_cards() -> None:
    with pytest.raises(ValueError, match="telepathy"):
        Catalog({"odd-model": {"input_per_m": 1, "output_per_m": 1, "capabilities": ["tools", "telepathy"]}})
    with pytest.raises(ValueError, match="unknown capabilities"):
        _card("odd", {"provider": "x", "input_per_m": 0, "output_per_m": 0, "capabilities": ["audio"]})


def test_unknown_capability_rejected_for_overrides() -> None:
    with pytest.raises(ValueError):
        Catalog({"gpt-4o": {"capabilities": ["telepathy"]}})


def test_prefix_lookup() -> None:
    cat = Catalog()
    assert cat.get("openai/gpt-4o") is cat.get("gpt-4o") is not None
    assert cat.get("together/meta-llama/Llama-3.3-70B-Instruct-Turbo") is CARDS[
        "meta-llama/Llama-3.3-70B-Instruct-Turbo"]
    assert cat.get("meta-llama/Llama-3.3-70B-Instruct-Turbo") is not None  # a slash in the id itself
    assert "anthropic/claude-sonnet-4-5" in cat
    assert cat.get("openai/gpt-7") is None and "gpt-7" not in cat


def test_unknown_card_is_free_not_guessed() -> None:
    card = unknown_card("mystery", "openai")
    assert isinstance(card, ModelCard) and card.cost(Usage(input_tokens=10**6, output_tokens=10**6)) == 0.0
