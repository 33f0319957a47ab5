"""`modelyard_rate_limited_total{scope}` on the real server: one count per request the gateway refuses
for a key, team, user or deployment rate limit, labelled by the kind of scope only (never the key,
team or user it names); upstream 429s and requests that find room elsewhere are not counted."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import make_server

MASTER = "rate-metric-master-key"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def rate_limited(url: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = httpx.get(url + "/metrics", headers=ADMIN, timeout=10).text
    return {tuple(sorted(s.labels.items())): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == "modelyard_rate_limited_total"}


def test_each_refusal_counts_once_under_its_scope_kind(tmp_path: Path) -> None:
    config = {
        "deployments": {"solo": {"provider": "sim", "model": "sim/fast", "rpm": 1},
                        "a": {"provider": "sim", "model": "sim/fast", "rpm": 1},
                        "b": {"provider": "sim", "model": "sim/fast"},
                        "up429": {"provider": "sim", "model": "sim/fast", "card": "sim/fast",
                                  "sim": {"rate_limit_rate": 1.0}}},
        "model_groups": {"spill": {"deployments": ["a", "b"]}},
        "resilience": {"retry": {"max_attempts": 1}},
    }
    with make_server(tmp_path, config, master_key=MASTER) as srv:
        url = srv.url

        def admin(path: str, body: dict[str, object]) -> dict[str, object]:
            r = httpx.post(url + path, json=body, headers=ADMIN, timeout=10)
            assert r.status_code in (200, 201), r.text
            return r.json()  # type: ignore[no-any-return]

        def chat(key: str, model: str = "b") -> int:
            return httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}]}).status_code

        admin("/admin/teams", {"name": "eng", "rpm": 1})
        admin("/admin/users", {"name": "bob", "rpm": 1})
        by_key = str(admin("/admin/keys", {"name": "k", "rpm": 1})["key"])
        by_team = str(admin("/admin/keys", {"team": "eng"})["key"])
        by_user = str(admin("/admin/keys", {"user": "bob"})["key"])
        free = str(admin("/admin/keys", {"name": "free"})["key"])
        assert rate_limited(url) == {}
        assert [chat(by_key), chat(by_key), chat(by_key)] == [200, 429, 429]
        assert [chat(by_team), chat(by_team)] == [200, 429]
        assert [chat(by_user), chat(by_user)] == [200, 429]
        assert [chat(free, "solo"), chat(free, "solo")] == [200, 429]  # the deployment's own rpm
        assert [chat(free, "spill"), chat(free, "spill")] == [200, 200]  # full `a`: served by `b`, not refused
        assert chat(free, "up429") == 429  # the upstream's 429: not the gateway's limit
        counts = rate_limited(url)
    assert counts == {(("scope", "key"),): 2, (("scope", "team"),): 1, (("scope", "user"),): 1,
                      (("scope", "deployment"),): 1}
