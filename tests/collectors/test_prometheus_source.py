"""REAL Prometheus (Debian's binary) scrapes two real Triton replicas and Warden's own /metrics;
:class:`PrometheusSource` must read back what the direct scraper measured over the same period.

Tolerance: 15 % on rates and mean durations. Why that much: Triton refreshes its counters once a
second, Prometheus scrapes once a second and ``rate()`` extrapolates to the window's edges, so the
two sources see the same requests through windows offset by up to a second (about 7 % of a 14 s
window at a steady rate). Mean durations may also differ by half a millisecond: a queue mean of
3 ms moves by more than 15 % when a second's worth of requests falls in one window only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from collectors.prometheus import PrometheusSource, triton_queries
from collectors.self_metrics import WardenMetrics
from collectors.triton import TritonMetricsCollector
from serving.fleet import Fleet, FleetConfig, free_port
from serving.loadgen import LoadGenerator, LoadProfile
from warden.records import Sample

PROMETHEUS = "/usr/bin/prometheus"
TOLERANCE = 0.15
DURATION_ABS_S = 5e-4  # or half a millisecond, for the few-millisecond queue means
LOAD_S = 14.0
RATE = 80.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason="Debian's prometheus missing"),
]


def _start_prometheus(tmp: Path, targets: dict[str, list[str]]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": tgts}]}
            for job, tgts in targets.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    log = open(tmp / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise RuntimeError("prometheus not ready within 20 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Fleet, WardenMetrics, int, str]]:
    """Two synth replicas, Warden's /metrics, and a Prometheus scraping all three."""
    metrics = WardenMetrics(CollectorRegistry())
    # what collectors.self_metrics.serve_metrics does, keeping the server so it can be stopped
    server, _ = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    metrics_port = int(server.server_address[1])
    try:
        with Fleet(FleetConfig(models=["synth"]), tmp_path / "fleet") as fleet:
            fleet.start(2)
            prom, url = _start_prometheus(tmp_path, {
                "triton": [f"127.0.0.1:{r.metrics_port}" for r in fleet.replicas],
                "warden": [f"127.0.0.1:{metrics_port}"],
            })
            try:
                _wait_scraped(url, n_targets=3)
                yield fleet, metrics, metrics_port, url
            finally:
                _stop(prom)
                shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)
    finally:
        server.shutdown()
        server.server_close()


def _wait_scraped(url: str, n_targets: int, timeout_s: float = 15.0) -> None:
    """Prometheus spreads its first scrapes over seconds; a rate window must not start before."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/api/v1/query", params={"query": "count_over_time(up[10s]) >= 2"},
                        timeout=2).json()
        if len(doc["data"]["result"]) >= n_targets:
            return
        time.sleep(0.3)
    raise RuntimeError(f"prometheus did not scrape {n_targets} targets twice in {timeout_s} s")


def _raw_points(url: str, at: float) -> list[tuple[str, list[float]]]:
    """The raw scrapes behind the rates, for the failure message: (instance, timestamps)."""
    doc = httpx.get(f"{url}/api/v1/query", params={
        "query": 'nv_inference_request_success{job="triton",model="synth"}[20s]',
        "time": f"{at:.3f}"}).json()
    return [(el["metric"]["instance"], [round(float(t) - at, 2) for t, _ in el["values"]])
            for el in doc["data"]["result"]]


def _index(samples: list[Sample]) -> dict[tuple[str, str, str], float]:
    out = {}
    for s in samples:
        lab = dict(s.labels)
        if lab.get("model") == "synth" and lab.get("variant") == "full":
            out[(s.series, lab["replica"], lab.get("reason", ""))] = s.value
    return out


def test_prometheus_source_agrees_with_direct_scrape(stack) -> None:
    fleet, metrics, metrics_port, prom_url = stack
    replicas = {f"127.0.0.1:{r.metrics_port}": r.name for r in fleet.replicas}
    direct = TritonMetricsCollector({r.name: r.metrics_url for r in fleet.replicas},
                                    metrics=metrics)
    gens = [LoadGenerator(r.url, LoadProfile(kind="constant", rate=RATE / 2), {"synth": 1.0},
                          seed=i) for i, r in enumerate(fleet.replicas)]
    for g in gens:
        g.start()
    try:
        time.sleep(3.0)  # let Triton's 1 s metric refresh and Prometheus' scrapes see the load
        t0 = time.time()
        direct.collect(t0)
        time.sleep(LOAD_S)
        t1 = time.time()
        measured = _index(direct.collect(t1))
    finally:
        summaries = [g.stop() for g in gens]
    assert all(s.errors == 0 and s.ok > 0 for s in summaries), [s.table() for s in summaries]
    time.sleep(1.5)  # Prometheus' last scrape up to t1 has landed

    source = PrometheusSource(prom_url, metrics=metrics, replicas=replicas,
                              queries=triton_queries(window=f"{t1 - t0:.0f}s",
                                                     selector='job="triton"'))
    with source:
        got = _index(source.collect(t1))
        compared = []
        for series in ("triton_request_success_per_second", "triton_inference_per_second",
                       "triton_request_duration_seconds", "triton_queue_duration_seconds",
                       "triton_compute_infer_duration_seconds", "triton_batch_size",
                       "triton_error_ratio"):
            for r in fleet.replicas:
                want, have = measured[(series, r.name, "")], got.get((series, r.name, ""))
                assert have is not None, f"{series}{{replica={r.name}}} missing from Prometheus"
                tol = {"abs": DURATION_ABS_S} if series.endswith("_seconds") else {}
                assert have == pytest.approx(want, rel=TOLERANCE, **tol), (
                    series, r.name, want, have, _raw_points(prom_url, t1))
                compared.append((series, r.name, want, have))
        # both replicas got about half the offered load, seen the same way by both sources
        rates = [measured[("triton_request_success_per_second", r.name, "")]
                 for r in fleet.replicas]
        assert sum(rates) == pytest.approx(RATE, rel=0.25)

        # Prometheus scraped Warden's own metrics: the counter the direct scrape incremented
        warden = source.query('warden_samples_ingested_total{source="triton",job="warden"}', t1 + 1)
        assert len(warden) == 1
        assert warden["instance"].iloc[0] == f"127.0.0.1:{metrics_port}"
        assert 0 < warden["value"].iloc[0] <= metrics.value("warden_samples_ingested_total",
                                                            {"source": "triton"})
        # and a range over the load window comes back as a frame of finite points
        df = source.query_range(
            'sum by (instance) (rate(nv_inference_request_success{job="triton"}[5s]))',
            t0, t1, 1.0)
        assert set(df["instance"]) == set(replicas) and df["value"].gt(0).all()
        assert metrics.value("warden_scrape_errors_total",
                             {"target": "prometheus", "reason": "bad_data"}) == 0
    for row in compared:
        print("%-40s %s direct=%.5g prometheus=%.5g" % row)
