"""The Python API runs the same pipeline as the server."""

from __future__ import annotations

import pytest

import modelyard
from modelyard.errors import BadRequest, NotFound


def test_sync_client_chat_and_stream() -> None:
    with modelyard.Client(sim_only=True) as client:
        r = client.chat("What is the capital of Italy?", model="smart")
        assert r.text and r.deployment == "sim/frontier" and r.cost_usd > 0
        assert r.decision is not None and r.decision.model == "smart"
        chunks = list(client.stream("What is the capital of Italy?", model="smart"))
        assert "".join(c.text or "" for c in chunks) == r.text
        assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == r.usage.output_tokens


async def test_async_client_messages_and_params() -> None:
    async with modelyard.AsyncClient(sim_only=True) as client:
        r = await client.chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
                              model="fast", max_tokens=5, temperature=0.1)
        assert r.usage.output_tokens <= 5
        with pytest.raises(BadRequest, match="temperature"):
            await client.chat("x", model="fast", temperature="hot")
        with pytest.raises(NotFound):
            await client.chat("x", model="missing")
