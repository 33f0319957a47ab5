"""The dashboard in a real browser: Debian's chromium driven by Playwright, against the real server on
loopback with sim traffic and a master key. Logs in, waits for data, checks that the charts drew
something and the figures are not zero, that no console error appeared, and keeps a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import make_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
KEY = "ui-test-master-key"
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard.png"
# what the experiments helper's GET /admin/experiments returns (the panel's contract)
EXPERIMENTS = {"experiments": [{"name": "cheaper-auto", "group": "auto", "unit": "user", "metric": "cost",
                                "variants": [
                                    {"name": "control", "requests": 412, "success_rate": 0.993, "latency_p50_ms": 640,
                                     "latency_p95_ms": 1710, "cost_per_request_usd": 0.00041, "feedback_mean": 0.82},
                                    {"name": "treatment", "requests": 46, "success_rate": 0.978, "latency_p50_ms": 410,
                                     "latency_p95_ms": 1220, "cost_per_request_usd": 0.00025, "feedback_mean": 0.8}],
                                "verdict": "treatment is 38% cheaper; quality not different at 95%"}]}

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) or shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (make dev installs it as root)")


def _traffic(url: str) -> None:
    h = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(timeout=30, headers=h) as c:
        for i in range(60):
            body: dict[str, Any] = {"model": ["auto", "fast", "smart", "cheap"][i % 4],
                                    "messages": [{"role": "user", "content": f"question {i}: what is {i} + {i}?"}]}
            if i % 5 == 0:
                body["stream"] = True
            assert c.post(url + "/v1/chat/completions", json=body).status_code == 200
        assert c.post(url + "/v1/chat/completions", json={"model": "nope", "messages": [
            {"role": "user", "content": "hi"}]}).status_code == 404
        # budgets: a team and a key with their own, and 4 requests on the key (the budgets panel)
        assert c.post(url + "/admin/teams", json={"name": "research", "budget_usd": 5.0}).status_code == 201
        key = c.post(url + "/admin/keys", json={"name": "lab", "team": "research", "budget_usd": 0.2,
                                                "soft_budget_pct": 1}).json()["key"]
        for i in range(4):
            assert c.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json={
                "model": "smart", "max_tokens": 50,
                "messages": [{"role": "user", "content": f"budgeted question {i} " * 30}]}
            ).status_code == 200


def test_dashboard_renders_live_data_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with make_server(tmp_path, master_key=KEY) as s:
        async def experiments(scope: Any, receive: Any, send: Any, rid: str) -> None:  # the fixture
            from modelyard.server.http import send_json

            await send_json(send, 200, orjson.dumps(EXPERIMENTS), rid)

        s.server.config.app.add_route("GET", "/admin/experiments", experiments)
        _traffic(s.url)
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1250})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(s.url + "/ui")
                page.wait_for_selector("#login-form", state="visible", timeout=15000)
                page.fill("#key", KEY)
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("#main", state="visible", timeout=15000)
                page.wait_for_function("document.querySelectorAll('#c-traffic canvas').length > 0", timeout=15000)
                page.wait_for_selector("#experiments-card", state="visible", timeout=15000)
                page.wait_for_selector("#budgets-card", state="visible", timeout=15000)
                page.wait_for_timeout(500)
                rps = float(page.inner_text("#k-rps"))
                requests = int(page.inner_text("#k-req").split()[0])
                assert rps > 0 and requests == 65, (rps, requests)
                assert page.inner_text("#k-cost").startswith("$") and page.inner_text("#k-cost") != "$0"
                # the charts drew something: canvases with size and non-blank pixels, SVG bars with width
                for chart in ("c-traffic", "c-latency", "c-cost"):
                    drawn = page.evaluate(f"""() => {{
                        const c = document.querySelector('#{chart} canvas');
                        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
                        return [c.width, c.height, n]; }}""")
                    assert drawn[0] > 100 and drawn[1] > 100 and drawn[2] > 500, (chart, drawn)
                for panel in ("models-bars", "routing", "spend", "experiments"):
                    widths = page.evaluate(f"""() => [...document.querySelectorAll('#{panel} svg rect')]
                        .map(r => r.getBBox().width)""")
                    assert widths and max(widths) > 10, (panel, widths)
                assert page.locator("#breakers .tile").count() == 4
                assert "38% cheaper" in page.inner_text("#experiments")
                # the budgets panel (GET /admin/budgets): the key and its team, with used-ratio bars
                rows = page.locator("#budgets table.budgets tr").all_inner_texts()[1:]
                assert len(rows) == 2 and "lab" in rows[0] and "research" in rows[1], rows
                assert "soft limit" in rows[0] or "exceeded" in rows[0], rows  # 1% soft limit: passed
                used = page.evaluate("""() => [...document.querySelectorAll('#budgets svg.meter rect.used')]
                    .map(r => Number(r.getAttribute('width')))""")
                assert len(used) == 2 and min(used) > 0, used
                assert "auto" in page.inner_text("#routing") and "rule" in page.inner_text("#routing")
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"dashboard screenshot: {shot}")
                if os.environ.get("MODELYARD_UPDATE_DOCS_SCREENSHOT") == "1":
                    shutil.copy(shot, DOCS_SHOT)
                # a wrong key is refused and the login form comes back
                page.evaluate("sessionStorage.setItem('modelyard.masterKey', 'wrong')")
                page.reload()
                page.wait_for_selector("#login-error", state="visible", timeout=15000)
                errors = [e for e in errors if "401" not in e]  # the refused key's own request
            finally:
                browser.close()
        assert not errors, errors
