"""A diurnal traffic swing the baselines have seen raises nothing (issue 4, on the real lab).

Time is compressed: one "day" is 30 s, traffic swings from 0.4x to 1.6x its mean. The
detectors learn during the first cycles; then two more cycles must pass without a single
detection alert. The swing must be material for this to mean anything, so the test also
asserts that traffic really swung (and prints how far latency moved with it).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from warden.config import load_config
from warden.lab import Lab
from warden.store import Store

pytestmark = pytest.mark.slow

PERIOD_S = 30.0
LEARN_S = 45.0  # 1.5 cycles; per replica about 900 requests, over the detectors' min_points
WATCH_S = 2 * PERIOD_S


def test_seen_diurnal_swing_raises_no_alert(tmp_path: Path) -> None:
    config = load_config(home=tmp_path, lab={
        "replicas": 2, "router_port": 0, "router_policy": "round_robin",
        "traffic": {"kind": "diurnal", "rate": 50, "amplitude": 0.6, "period_s": PERIOD_S},
        "traffic_models": {"synth": 1}},
        fleet={"models": ["synth"]}, remediation={"enabled": False})
    with Lab(config) as lab:
        assert lab.loadgen is not None
        time.sleep(LEARN_S)
        watch_from = time.time()
        time.sleep(WATCH_S)
        watch_to = time.time()
        store = Store(config.db_path, readonly=True)
        time.sleep(3)  # the last chains and the last tick land
        alerts = store.query("SELECT ts, alertname, status, labels FROM alerts "
                             "WHERE status = 'firing' AND ts >= ?", (watch_from,))
        chains = store.query("SELECT ts, latency_s FROM chains WHERE ts BETWEEN ? AND ? "
                             "AND error = 0", (watch_from, watch_to))
    assert alerts.empty, alerts.to_dict("records")
    # The swing was real: per-second arrivals followed it.
    per_s = chains.groupby(np.floor(chains.ts)).latency_s.agg(["size", "median"])
    busy, quiet = per_s["size"].quantile(0.9), per_s["size"].quantile(0.1)
    print(f"arrivals per second {quiet:.0f} -> {busy:.0f}; median latency per second "
          f"{per_s['median'].min() * 1e3:.1f} -> {per_s['median'].max() * 1e3:.1f} ms")
    assert busy >= 2.5 * quiet
    assert len(chains) >= 0.8 * 50 * WATCH_S
