"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real server."""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serving(tmp_path: Path, model: dict, versions: int, extra_rows: int = 100):
    """A real ``lure up`` with ``model`` trained on 300-sample mega-batches until ``versions``
    versions exist, plus ``extra_rows`` samples in the open mega-batch."""
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (scripts/test.sh installs it)"
        if os.environ.get("LURE_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")} | {
        "LURE_TORCH_THREADS": "1"
    }
    key = create_admin_key(env, tmp_path / "data")
    server = Process(
        lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        env,
        tmp_path / "server.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server, key)
        data = load_digits_dataset()
        with httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            client.post("/v1/models", json=model).raise_for_status()
            client.post(
                f"/v1/models/{model['name']}/chunks?split=test",
                content=npz_body(data.test.x, data.test.y),
                headers=NPZ,
            ).raise_for_status()
            for start in (0, 300):
                client.post(
                    f"/v1/models/{model['name']}/chunks?split=train",
                    headers=NPZ,
                    content=npz_body(
                        data.train.x[start : start + 300], data.train.y[start : start + 300]
                    ),
                ).raise_for_status()
            published = wait_for_versions(client, model["name"], versions)
            if extra_rows:
                client.post(
                    f"/v1/models/{model['name']}/chunks?split=train",
                    headers=NPZ,
                    content=npz_body(
                        data.train.x[600 : 600 + extra_rows], data.train.y[600 : 600 + extra_rows]
                    ),
                ).raise_for_status()
        yield base, published, key
    except BaseException:
        print(server.tail(60))
        raise
    finally:
        server.stop()


@pytest.fixture()
def server_with_two_versions(tmp_path):
    with serving(tmp_path, DIGITS_MODEL, 2) as served:
        yield served


def _open_dashboard(playwright, base: str, key: str):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/dashboard")
    page.wait_for_function(  # no key yet: it says so, and where to find one
        "document.getElementById('status').textContent.includes('no API key entered')"
    )
    page.fill("#key-input", key)  # as a user would: the key goes to this browser's localStorage
    page.click("#key-form button")
    return browser, page, errors


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _clean_then_noisy_traffic(base: str, key: str) -> None:
    """40 clean answers, then 40 on noise, logged with drift checks every 40 (no early seal: the
    open mega-batch stays as the test expects it) and version 1 shadowing; returns once both
    checks are recorded."""
    digits = load_digits_dataset().test.x
    noisy = np.clip(
        digits[40:80] * 0.2 + 100 + np.random.default_rng(0).normal(0, 70, digits[40:80].shape),
        0,
        255,
    ).astype(np.uint8)
    drift = {"window": 40, "check_every": 40, "min_seconds": 0, "p_value": 0.001, "seal": False}
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        recipe = {"log_predictions": {"drift": drift}, "shadow": [1]}  # v1 shadows the live v2
        c.patch("/v1/models/digits", json=recipe).raise_for_status()
        for images in (digits[:40], noisy):
            body = {"images": png_images(images)}
            c.post("/v1/models/digits/predict", json=body).raise_for_status()
            wait_until(lambda: c.get("/v1/models/digits/drift").json()["checks"], 30)
        wait_until(lambda: len(c.get("/v1/models/digits/drift").json()["checks"]) == 2, 30)


def test_dashboard_shows_both_versions_in_table_and_charts(server_with_two_versions):
    from playwright.sync_api import sync_playwright

    base, versions, key = server_with_two_versions
    _clean_then_noisy_traffic(base, key)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser, page, errors = _open_dashboard(playwright, base, key)
        page.wait_for_selector("#versions tbody tr[data-version='1']", timeout=30_000)
        page.wait_for_function(
            "window.lureDashboard.charts.accuracy.data.datasets[0].data.length === 2"
        )

        overview = page.locator("#models tbody tr").first
        assert overview.locator("td").nth(0).inner_text() == "digits"
        assert overview.locator("td").nth(1).inner_text() == "2"
        assert re.fullmatch(r"\d+\.\d (kB|MB)", overview.locator("td").nth(6).inner_text())
        for version in versions:
            row = page.locator(f"#versions tbody tr[data-version='{version['number']}']")
            metrics = version["metrics"]
            assert row.locator("td.acc").inner_text() == f"{100 * metrics['test_accuracy']:.2f} %"
            assert row.locator("td.cer").inner_text() == str(metrics["cer"])
            assert row.locator("td.ece").inner_text() == f"{metrics['ece']:.4f}"
            compute = f"{metrics['epochs_trained']} / {metrics['optimizer_steps']}"
            assert row.locator("td.steps").inner_text() == compute
        assert page.locator("#versions tbody tr.live").get_attribute("data-version") == "2"
        assert page.locator("#fill-text").inner_text() == "#3: 100 / 300"

        charts = page.evaluate("""() => {
            const c = window.lureDashboard.charts;
            return {accuracy: c.accuracy.data.datasets[0].data, cer: c.cer.data.datasets[0].data,
                    steps: c.steps.data.datasets[0].data,
                    gap: c.gap.data.datasets[0].data, ece: c.ece.data.datasets[0].data,
                    labels: c.accuracy.data.labels,
                    reliability: c.reliability.data.datasets[0].data};
        }""")
        assert charts["labels"] == ["1", "2"]
        assert charts["accuracy"] == pytest.approx(
            [v["metrics"]["test_accuracy"] for v in versions]
        )
        assert charts["cer"] == [v["metrics"]["cer"] for v in versions]
        assert charts["steps"] == [v["metrics"]["optimizer_steps"] for v in versions]
        assert charts["gap"] == pytest.approx(
            [v["metrics"]["generalization_gap"] for v in versions]
        )
        assert charts["ece"] == pytest.approx([v["metrics"]["ece"] for v in versions])
        assert len(charts["reliability"]) >= 1
        drift = page.evaluate("""() => {
            const d = window.lureDashboard.charts.drift.data;
            return {labels: d.labels, colors: d.datasets[0].pointBackgroundColor};
        }""")
        assert drift == {"labels": ["1 (v2)", "2 (v2)"], "colors": ["#b07aa1", "#e15759"]}
        assert "DRIFTED" in page.locator("#live-drift").inner_text()
        page.wait_for_function(
            "document.getElementById('key-reach').textContent.includes('reaches every model')"
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # promote (rollback) from the page: the dialog gives v1's record as a shadow, and the
        # live marker moves without a reload
        said: list[str] = []
        page.on("dialog", lambda dialog: (said.append(dialog.message), dialog.accept()))
        page.locator("#versions tbody tr[data-version='1'] button").click()
        page.wait_for_function(
            "document.querySelector('#versions tbody tr.live')?.dataset.version === '1'",
            timeout=15_000,
        )
        assert "As a shadow it answered 80 logged requests" in said[0], said
        assert (
            httpx.get(
                f"{base}/v1/models/digits", headers={"Authorization": f"Bearer {key}"}
            ).json()["live_version"]
            == 1
        )
        browser.close()
    assert errors == []


def _api_docs_render(playwright, base: str) -> None:
    """/docs and /redoc from the package's own assets: the browser here cannot reach a CDN."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(f"{base}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "LURE update server" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-summary-path").count() > 20  # every route listed
    page.goto(f"{base}/redoc")
    page.wait_for_selector("h1", timeout=30_000)
    assert "LURE update server" in page.locator("h1").first.inner_text()
    browser.close()
    assert failed == []


GATED_MODEL = {
    **DIGITS_MODEL,
    "name": "gated",
    "challengers": ["warm"],
    "promotion": {"min_accuracy_delta": 1.0},  # nothing gains 100 points: every update is held
}


def test_dashboard_shows_candidates_side_by_side_and_held_versions(tmp_path):
    from playwright.sync_api import sync_playwright

    with serving(tmp_path, GATED_MODEL, 4, extra_rows=0) as (base, versions, key):
        with sync_playwright() as playwright:
            browser, page, errors = _open_dashboard(playwright, base, key)
            page.wait_for_selector("#candidates tbody tr[data-megabatch='2']", timeout=30_000)
            rows = page.locator("#candidates tbody tr")
            assert rows.count() == 2
            second = page.locator("#candidates tbody tr[data-megabatch='2']")
            assert second.locator("span.candidate").count() == 2
            assert second.locator("td").nth(2).inner_text() == "none"  # held: nothing went live
            assert "accuracy changed" in second.locator("td").nth(3).inner_text()
            held = [v for v in versions if v["release"] == "held"]
            assert len(held) == 1
            row = page.locator(f"#versions tbody tr[data-version='{held[0]['number']}']")
            assert row.get_attribute("class") == "held"
            assert row.locator("td.verdict-held").inner_text().startswith("held")
            summary = page.locator("#strategy-summary").inner_text()
            assert "wins:" in summary and "lure" in summary and "warm" in summary
            # each strategy's lineage, the live one and the evidence against it
            assert "Lineages: live lure; heads lure v1, warm v2" in summary, summary
            assert "warm " in summary.split("against the live one:")[1]
            datasets = page.evaluate(
                "() => window.lureDashboard.charts.strategies.data.datasets.map(d => d.label)"
            )
            assert sorted(datasets) == ["lure", "warm"]
            _quarantine_shows_and_is_released(page, base, key)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard_candidates.png"), full_page=True)
            browser.close()
            _api_docs_render(playwright, base)  # the same server: no CDN reachable from here
    assert errors == []


def _quarantine_shows_and_is_released(page, base: str, key: str) -> None:
    """A shuffled mega-batch is quarantined by the data gate; the dashboard lists it with its
    reason, and its release button (an admin's decision) sends it to training."""
    import numpy as np

    data = load_digits_dataset()
    shuffled = np.random.default_rng(0).permutation(data.train.y[600:900])
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        c.post(
            "/v1/models/gated/chunks?split=train",
            headers=NPZ,
            content=npz_body(data.train.x[600:900], shuffled),
        ).raise_for_status()
    page.wait_for_selector("#quarantined tbody tr[data-megabatch='3']", timeout=120_000)
    assert page.locator("#quarantine").is_visible()
    why = page.locator("#quarantined tbody tr[data-megabatch='3'] td.why").inner_text()
    assert "disagree with what the model learnt" in why
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#quarantine").screenshot(path=str(ARTIFACTS / "dashboard_quarantine.png"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#quarantined tbody tr[data-megabatch='3'] button", has_text="release").click()
    page.wait_for_selector("#quarantine", state="hidden", timeout=30_000)
