"""Dashboard page load time on a day of 1 s samples for 10 replicas.

Seeds a store (once; reused while its shape matches) through the store's write API:
``replicas x hours x 3600`` samples for each of ``triton_up``,
``triton_request_success_per_second`` and ``triton_request_failure_per_second``; one GPU reading
per device per second; one traced request chain per replica every 5 s; anomalies, an outbox, an
audit and chaos journals. Then times each page's full script run under Streamlit's AppTest (the
same code path the server runs per page view), median of ``--runs`` fresh sessions, for the
default window (last hour) and the widest one (last 24 h). Target: under 2 s per page.

    python benchmarks/dashboard_load.py            # a day, 10 replicas (about a minute to seed)
    python benchmarks/dashboard_load.py --quick    # two hours, for a smoke run
    python benchmarks/dashboard_load.py --browser  # also: real server, headless Chromium

``--browser`` starts the dashboard with ``streamlit run`` and loads each page in headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by selenium), timing from the
navigation to the page's last section and every chart being drawn, with ``?range=1h`` and
``?range=24h``: the load time a user sees, transport and rendering included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warden.records import (  # noqa: E402
    Anomaly,
    GpuReading,
    RequestChain,
    Sample,
    freeze_labels,
)
from warden.store import Store  # noqa: E402

VIEWS = Path(__file__).resolve().parents[1] / "dashboard" / "views"
PAGES = ("fleet.py", "latency.py", "traces.py", "gpus.py", "alerts.py", "chaos.py")
T0 = 1_700_000_000.0
TARGET_S = 2.0


def seed(db: Path, replicas: int, hours: float) -> dict[str, int]:
    """Write the benchmark's store; returns row counts per kind."""
    seconds = int(hours * 3600)
    store = Store(db)
    counts = {"samples": 0, "gpu_readings": 0, "chains": 0}
    batch = 3600
    for r in range(replicas):
        up = freeze_labels({"replica": f"r{r}"})
        lab = freeze_labels({"replica": f"r{r}", "model": "synth", "variant": "full"})
        for b in range(0, seconds, batch):
            rng = range(b, min(b + batch, seconds))
            rows = [Sample("triton_up", up, T0 + i, 1.0) for i in rng]
            rows += [Sample("triton_request_success_per_second", lab, T0 + i, 20.0 + i % 7)
                     for i in rng]
            rows += [Sample("triton_request_failure_per_second", lab, T0 + i, float(i % 50 == 0))
                     for i in rng]
            counts["samples"] += store.write_samples(rows)
    for b in range(0, seconds, batch):
        gpu = [GpuReading(T0 + i, f"gpu{r}", True, 60.0 + (i % 600) / 60, 150.0, 300.0, 1800.0,
                          1800.0, 5000.0, 0.6, 4e9, 16e9,
                          ("sw_thermal_slowdown",) if i % 900 < 30 else (),
                          alloc_allocated_bytes=2e9, alloc_reserved_bytes=3e9, alloc_retries=0,
                          alloc_ooms=0, replica=f"r{r}")
               for i in range(b, min(b + batch, seconds)) for r in range(replicas)]
        counts["gpu_readings"] += store.write_gpu_readings(gpu)
        chains = []
        for i in range(b, min(b + batch, seconds), 5):
            for r in range(replicas):
                lat = 0.010 + 0.001 * r + (i % 13) * 0.0005
                chains.append(RequestChain(
                    f"{i:012x}{r:04x}", T0 + i, "synth" if r % 2 else "mlp", "full", f"r{r}",
                    lat, {"client": lat, "router": lat * 0.9, "triton_http": lat * 0.8,
                          "queue": lat * 0.2, "compute_infer": lat * 0.5,
                          "model_code": lat * 0.4}, span_count=6))
        counts["chains"] += store.write_chains(chains)
    store.write_anomalies(Anomaly(T0 + i, "p99_drift", "request_latency_seconds",
                                  freeze_labels({"model": "synth"}), 0.9, 0.01, 0.05)
                          for i in range(0, seconds, max(seconds // 50, 1)))
    store.ensure_table("action_audit", "CREATE TABLE IF NOT EXISTS action_audit (ts REAL, "
                       "runbook TEXT, step TEXT, target TEXT, params TEXT, idempotency_key TEXT, "
                       "status TEXT, evidence TEXT, result TEXT)")
    store.insert_rows("action_audit", ("ts", "runbook", "step", "target", "params",
                                       "idempotency_key", "status", "evidence", "result"),
                      [(T0 + i, "rb", "scale_out", "synth", "{}", f"k{i}", "verified", "{}", "ok")
                       for i in range(0, seconds, 600)])
    store.checkpoint()
    store.close()
    chaos = db.parent / "chaos"
    chaos.mkdir(exist_ok=True)
    for j in range(5):
        (chaos / f"exp{j}.json").write_text(json.dumps({
            "title": f"experiment {j}", "verdict": "passed", "started_at": T0 + j * 600,
            "ended_at": T0 + j * 600 + 300, "time_to_detect_s": 10, "time_to_recover_s": 40,
            "slo_violation_s": 5, "timeline": [{"ts": T0 + j * 600 + k, "kind": "step",
                                                "message": "x"} for k in range(0, 300, 30)]}))
    return counts


def time_page(page: str, window: str, runs: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    out = []
    for _ in range(runs):
        at = AppTest.from_file(str(VIEWS / page), default_timeout=120)
        at.session_state["warden_range"] = window
        t = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - t)
        if at.exception:
            raise RuntimeError(f"{page}: {at.exception[0].value}")
        if any("could not be shown" in str(w.value) for w in at.warning):
            raise RuntimeError(f"{page}: {[w.value for w in at.warning]}")
    return out


#: page url path -> the text of its last section, and how many charts it draws
BROWSER_PAGES: dict[str, tuple[str, int]] = {
    "": ("Router", 1), "latency": ("Anomalies", 2), "traces": ("GPU at that time", 1),
    "gpus": ("Throttle reasons", 8), "alerts": ("Remediation audit", 0),
    "chaos": ("Timeline", 2),
}


def browser_times(db: Path, runs: int) -> dict[tuple[str, str], list[float]]:
    """Seconds from navigation until each page has settled, per (page, range)."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from dashboard.launch import start_dashboard, stop_dashboard, wait_ready
    from serving.fleet import free_port

    port = free_port()
    proc = start_dashboard(db, port=port, home=db.parent)
    out: dict[tuple[str, str], list[float]] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        with tempfile.TemporaryDirectory() as profile:
            for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1400,2200", f"--user-data-dir={profile}"):
                opts.add_argument(flag)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
            try:
                driver.get(url)  # warm: the first load fetches the JS bundle
                time.sleep(3)
                for rng in ("1h", "24h"):
                    for path, (last, charts) in BROWSER_PAGES.items():
                        for _ in range(runs):
                            driver.get("about:blank")
                            t = time.perf_counter()
                            driver.get(f"{url}/{path}?range={rng}")
                            while time.perf_counter() - t < 60:
                                body = driver.execute_script("return document.body.innerText")
                                drawn = driver.find_elements(
                                    By.CSS_SELECTOR, ".js-plotly-plot .main-svg, .vega-embed svg, "
                                    ".vega-embed canvas")
                                widget = driver.find_elements(
                                    By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
                                if last in body and len(drawn) >= charts and not (
                                        widget and "Running" in widget[0].text):
                                    break
                                time.sleep(0.1)
                            out.setdefault((path or "fleet", rng), []).append(
                                time.perf_counter() - t)
            finally:
                driver.quit()
    finally:
        stop_dashboard(proc)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--quick", action="store_true", help="two hours of data, one run per page")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/warden_dashboard_bench")
    ap.add_argument("--browser", action="store_true",
                    help="also time each page in headless Chromium against a real server")
    args = ap.parse_args()
    if args.quick:
        args.hours, args.runs = 2.0, 1
    shape = f"{args.replicas}r_{args.hours:g}h"
    db = Path(args.dir) / shape / "warden.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        counts = seed(db, args.replicas, args.hours)
        print(f"seeded {db} in {time.perf_counter() - t:.1f} s: {counts}, "
              f"{db.stat().st_size / 2**20:.0f} MiB")
    else:
        print(f"reusing {db} ({db.stat().st_size / 2**20:.0f} MiB)")
    os.environ["WARDEN_DB"] = str(db)
    time_page("fleet.py", "Last 15 min", 1)  # warm imports once, as a running server has them
    windows = ("Last 1 h", "Last 24 h")
    print(f"\npage load, median of {args.runs} fresh sessions (AppTest script run), seconds")
    print(f"{'page':<12}" + "".join(f"{w:>12}" for w in windows) + f"{'max':>8}  under {TARGET_S:g} s")
    ok = True
    for page in PAGES:
        med, worst = [], 0.0
        for w in windows:
            ts = time_page(page, w, args.runs)
            med.append(statistics.median(ts))
            worst = max(worst, max(ts))
        good = max(med) < TARGET_S
        ok &= good
        print(f"{page.removesuffix('.py'):<12}" + "".join(f"{m:>12.3f}" for m in med)
              + f"{worst:>8.3f}  {'yes' if good else 'NO'}")
    if args.browser:
        times = browser_times(db, args.runs)
        print(f"\nin headless Chromium, navigation to settled page, median of {args.runs}, s")
        print(f"{'page':<12}{'?range=1h':>12}{'?range=24h':>12}{'max':>8}  under {TARGET_S:g} s")
        for page in PAGES:
            name = page.removesuffix(".py")
            med = [statistics.median(times[(name, r)]) for r in ("1h", "24h")]
            worst = max(max(times[(name, r)]) for r in ("1h", "24h"))
            good = max(med) < TARGET_S
            ok &= good
            print(f"{name:<12}" + "".join(f"{m:>12.3f}" for m in med)
                  + f"{worst:>8.3f}  {'yes' if good else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
