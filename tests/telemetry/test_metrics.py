"""GET /metrics after known traffic on the real server (uvicorn on loopback, the sim fleet), read with
prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import make_server
from modelyard.defaults import default_config_data

KEY = "test-master-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by its full name (`modelyard_requests_total`, `..._bucket`, ...)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in found.get(name, []) if all(lab.get(k) == want for k, want in labels.items()))


def chat(url: str, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers=AUTH, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra})


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = default_config_data(sim_only=True)
    data["server"] = {"metrics_key": "scrape-only-key"}
    with make_server(tmp_path_factory.mktemp("metrics"), data, master_key=KEY) as s:
        yield s


def test_counters_after_known_traffic(srv: Any) -> None:
    before = samples(httpx.get(srv.url + "/metrics", headers=AUTH).text)
    sent_cost, sent_in, sent_out = 0.0, 0, 0
    for _ in range(5):
        r = chat(srv.url, "fast")
        assert r.status_code == 200
        sent_cost += float(r.headers["x-modelyard-cost-usd"])
        sent_in += r.json()["usage"]["prompt_tokens"]
        sent_out += r.json()["usage"]["completion_tokens"]
    with httpx.stream("POST", srv.url + "/v1/chat/completions", headers=AUTH, timeout=30,
                      json={"model": "cheap", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}) as r:
        assert r.status_code == 200
        r.read()
    assert chat(srv.url, "no-such-model").status_code == 404

    r = httpx.get(srv.url + "/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = samples(r.text)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("modelyard_requests_total", group="fast", status="2xx", error_type="none") == 5
    assert delta("modelyard_requests_total", group="cheap", status="2xx") == 1
    assert delta("modelyard_requests_total", group="other", status="4xx", error_type="not_found_error",
                 deployment="none") == 1
    assert delta("modelyard_request_duration_seconds_count", group="fast") == 5
    assert delta("modelyard_ttft_seconds_count", group="cheap") == 1
    assert delta("modelyard_ttft_seconds_count", group="fast") == 0
    assert delta("modelyard_cost_usd_total", group="fast") == pytest.approx(sent_cost, rel=1e-4)
    assert delta("modelyard_tokens_total", group="fast", kind="input") == sent_in
    assert delta("modelyard_tokens_total", group="fast", kind="output") == sent_out
    assert delta("modelyard_attempts_total", group="fast") >= 5
    assert delta("modelyard_gateway_overhead_seconds_count", group="fast") == 5
    # a histogram's buckets are cumulative: +Inf holds every observation
    assert delta("modelyard_request_duration_seconds_bucket", group="fast", le="+Inf") == 5
    deps = {lab["deployment"] for lab, _ in after["modelyard_breaker_state"]}
    assert "sim/fast" in deps and all(v == 0 for _, v in after["modelyard_breaker_state"])
    assert after["modelyard_in_flight"][0][1] >= 0


def test_labels_stay_bounded_under_made_up_model_names(srv: Any) -> None:
    for i in range(60):
        assert chat(srv.url, f"made-up-model-{i}").status_code == 404
    text = httpx.get(srv.url + "/metrics", headers=AUTH).text
    assert "made-up-model" not in text
    groups = {lab["group"] for lab, _ in samples(text)["modelyard_requests_total"]}
    assert "other" in groups and groups <= {"other", "auto", "smart", "fast", "cheap", "sim/frontier",
                                            "sim/balanced", "sim/fast", "sim/local"}


def test_metrics_auth(srv: Any) -> None:
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer scrape-only-key"})
    assert r.status_code == 200 and "modelyard_requests_total" in r.text
    # the metrics key is not a key for anything else
    assert httpx.post(srv.url + "/v1/chat/completions", headers={"Authorization": "Bearer scrape-only-key"},
                      json={"model": "fast", "messages": [{"role": "user", "content": "x"}]}).status_code == 401
    assert "scrape-only-key" not in r.text and KEY not in r.text


def test_public_metrics_and_off(tmp_path: Any) -> None:
    data = default_config_data(sim_only=True)
    data["server"] = {"metrics_public": True}
    with make_server(tmp_path / "a", data, master_key=KEY) as s:
        assert httpx.get(s.url + "/metrics").status_code == 200
    data = default_config_data(sim_only=True)
    data["telemetry"] = {"metrics": False}
    with make_server(tmp_path / "b", data, master_key=KEY) as s:
        assert httpx.get(s.url + "/metrics", headers=AUTH).status_code == 404
