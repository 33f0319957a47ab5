"""The admin stats API and the dashboard's files on the real server: figures after known traffic, the
request-log path agreeing with the live one, auth, bad parameters, breakers, caching headers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from conftest import make_server
from modelyard.defaults import default_config_data

KEY = "stats-key"
H = {"authorization": f"Bearer {KEY}"}


def _chat(url: str, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers=H, timeout=30,
                      json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi there"}]})


def test_figures_after_known_traffic_live_and_from_the_log(tmp_path: Path) -> None:
    with make_server(tmp_path, master_key=KEY) as s:
        cost = 0.0
        for model in ["sim/fast"] * 6 + ["sim/frontier"] * 3:
            r = _chat(s.url, model)
            assert r.status_code == 200
            cost += float(r.headers["x-modelyard-cost-usd"])
        assert _chat(s.url, "sim/fast", stream=True).status_code == 200
        assert _chat(s.url, "nope").status_code == 404
        get = lambda path: httpx.get(s.url + path, headers=H, timeout=30)  # noqa: E731
        summ = get("/admin/stats/summary?window=5m").json()
        assert summ["source"] == "live" and summ["requests"] == 11 and summ["errors"] == 1
        assert summ["requests_per_s"] > 0 and summ["latency_p50_ms"] is not None
        assert summ["ttft_p50_ms"] is not None  # the stream's
        deps = {d["deployment"]: d for d in get("/admin/stats/models").json()["deployments"]}
        assert deps["sim/fast"]["requests"] == 7 and deps["sim/frontier"]["requests"] == 3
        spend = get("/admin/stats/spend?by=deployment&window=5m").json()  # (live: the log may not be flushed yet)
        assert abs(sum(r["cost_usd"] for r in spend["rows"] if r["name"] == "sim/frontier")
                   + sum(r["cost_usd"] for r in spend["rows"] if r["name"] == "sim/fast") - spend["total_usd"]) < 1e-9
        assert spend["total_usd"] >= cost - 1e-9
        ts = get("/admin/stats/timeseries?window=2m&step=10s").json()
        assert len(ts["t"]) == len(ts["requests"]) == len(ts["cost_usd"]) and sum(ts["requests"]) == 11
        routing = {g["group"]: g for g in get("/admin/stats/routing").json()["groups"]}
        assert routing["sim/fast"]["mix"][0]["deployment"] == "sim/fast"
        assert routing["sim/fast"]["configured_strategy"] == "direct"
        # the request log gives the same counts (once the writer has flushed)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            logged = get("/admin/stats/summary?window=5m&source=log").json()
            if logged["requests"] == 11:
                break
            time.sleep(0.2)
        assert logged["source"] == "log" and logged["requests"] == 11 and logged["errors"] == 1
        assert abs(logged["cost_usd"] - summ["cost_usd"]) < 1e-9
        assert get("/admin/stats/summary?window=2h").json()["source"] == "log"  # past the live span


def test_auth_and_bad_parameters(tmp_path: Path) -> None:
    with make_server(tmp_path, master_key=KEY) as s:
        assert httpx.get(s.url + "/admin/stats/summary").status_code == 401
        assert httpx.get(s.url + "/admin/stats/summary", headers={"authorization": "Bearer no"}).status_code == 401
        for path, param in (("summary?window=abc", "window"), ("summary?window=0s", "window"),
                            ("timeseries?window=24h&step=1s", "step"), ("spend?by=colour", "by"),
                            ("models?source=disk", "source")):
            r = httpx.get(f"{s.url}/admin/stats/{path}", headers=H)
            assert r.status_code == 400, (path, r.text)
            assert r.json()["error"]["param"] == param
        features = httpx.get(s.url + "/admin/stats/features", headers=H).json()
        assert features == {"experiments": "/admin/experiments", "budgets": "/admin/budgets"}


def test_breakers_show_an_open_circuit(tmp_path: Path) -> None:
    data = default_config_data(sim_only=True)
    data["deployments"]["sim/local"]["sim"] = {"failure_rate": 1.0}
    with make_server(tmp_path, data) as s:
        for _ in range(8):
            _chat(s.url, "sim/local")
        rows = {b["deployment"]: b for b in httpx.get(s.url + "/admin/stats/breakers").json()["deployments"]}
        assert rows["sim/local"]["state"] == "open" and rows["sim/local"]["cooldown_s"] > 0
        assert rows["sim/local"]["healthy"] is False and rows["sim/fast"]["state"] == "closed"
        assert httpx.get(s.url + "/admin/stats/summary").json()["error_rate"] == 1.0


def test_dashboard_files_need_no_key_and_carry_caching_headers(tmp_path: Path) -> None:
    with make_server(tmp_path, master_key=KEY) as s:
        page = httpx.get(s.url + "/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-cache"
        again = httpx.get(s.url + "/ui/", headers={"if-none-match": page.headers["etag"]})
        assert again.status_code == 304
        js = httpx.get(s.url + "/ui/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        lib = httpx.get(s.url + "/ui/vendor/uPlot.iife.min.js")
        assert lib.status_code == 200 and "max-age" in lib.headers["cache-control"]
        assert httpx.get(s.url + "/ui/vendor/uPlot.LICENSE").status_code == 200
        assert httpx.get(s.url + "/ui/nope.js").status_code == 404
        assert httpx.get(s.url + "/ui/../app.py").status_code == 404
        for src in ("/ui/vendor/uPlot.min.css", "/ui/style.css", "/ui/charts.js"):
            assert src in page.text and httpx.get(s.url + src).status_code == 200
