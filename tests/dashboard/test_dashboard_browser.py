"""The dashboard for real: Streamlit as a process, each page loaded in headless Chromium.

Asserts each page's key elements render (headings, metrics, tables, plotly charts) and that no
exception box appears; saves a screenshot of every page under ``artifacts/dashboard/``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from dashboard.launch import start_dashboard, stop_dashboard, wait_ready
from serving.fleet import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,2200", "--hide-scrollbars")
#: url path -> (texts that must appear, charts drawn: plotly and Vega-Lite)
PAGES: dict[str, tuple[tuple[str, ...], int]] = {
    "": (("Fleet", "Replicas", "Healthy", "Latency per model and replica", "No lab running"), 1),
    "latency": (("Latency", "Jitter", "Anomalies", "P99 (ms)"), 1),
    "traces": (("Traces", "Slowest 20 chains", "Offsets from the raw spans", "GPU at that time"),
               1),
    "gpus": (("GPUs", "SIMULATED", "Throttle reasons", "Devices"), 1),
    "alerts": (("Alert timeline", "Notification outbox", "Remediation audit", "Evidence"), 1),
    "chaos": (("Chaos", "Experiments", "Timeline", "broken.json"), 1),
}
TIMEOUT_S = 25.0
#: a drawn chart: plotly's or Vega-Lite's container
CHART_CSS = ".js-plotly-plot, .vega-embed"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                       reason="needs Debian's chromium and chromium-driver "
                              "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture
def server(seeded, tmp_path):
    port = free_port()
    log = open(tmp_path / "streamlit.log", "wb")
    proc = start_dashboard(seeded.db, port=port, home=seeded.home, log=log)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_dashboard(proc)
        log.close()


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _settled(driver, texts: tuple[str, ...], charts: int) -> str:
    """Wait until the script run ended and every text and chart is on the page."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + TIMEOUT_S
    body = ""
    while time.monotonic() < deadline:
        body = driver.execute_script("return document.body.innerText")
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        plots = driver.find_elements(By.CSS_SELECTOR, CHART_CSS)
        if all(t in body for t in texts) and len(plots) >= charts and not (
                running and "Running" in running[0].text):
            time.sleep(0.8)  # let plotly finish its transitions before the screenshot
            return str(driver.execute_script("return document.body.innerText"))
        time.sleep(0.3)
    missing = [t for t in texts if t not in body]
    driver.save_screenshot(str(ARTIFACTS / "unsettled.png"))
    raise AssertionError(f"page did not settle: missing {missing}; body starts {body[:500]!r}")


def test_every_page_renders_in_chromium(server, browser):
    from selenium.webdriver.common.by import By

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    for path, (texts, charts) in PAGES.items():
        browser.get(f"{server}/{path}")
        body = _settled(browser, texts, charts)
        name = path or "fleet"
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), name
        assert "Traceback" not in body and "could not be shown" not in body, name
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]'), name
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert shots == sorted(f"{p or 'fleet'}.png" for p in PAGES)
    assert all((ARTIFACTS / s).stat().st_size > 20_000 for s in shots)  # not blank pages
