"""The closed loop on the real lab, every stage real: a replica slows down, its traces show it,
detection alerts, the runbook moves traffic off it through the router, and P99 comes back.

Everything is asserted from what the system recorded: the ``alerts`` and ``action_audit``
tables, the router's state and the request chains in the store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from serving.replica_control import ReplicaControl
from warden.config import load_config
from warden.lab import Lab
from warden.store import Store

pytestmark = pytest.mark.slow
SLO_P99_S = 0.25  # the built-in reroute runbook's objective


def test_slowed_replica_is_rerouted_and_p99_restored(tmp_path: Path) -> None:
    config = load_config(home=tmp_path, lab={
        "replicas": 3, "router_port": 0, "router_policy": "round_robin",
        "traffic": {"kind": "constant", "rate": 45}, "traffic_models": {"synth": 1}},
        fleet={"models": ["synth"]})
    with Lab(config) as lab:
        store = Store(config.db_path, readonly=True)
        # baselines learn from the first few hundred requests per replica (~25 s at 15 rps)
        assert lab.wait_until_armed(timeout_s=90)
        time.sleep(2)
        victim = lab.fleet.get("r2")
        fault_at = time.time()
        ReplicaControl(victim.control_url).set_faults(extra_latency_ms=400)
        verified = None
        deadline = time.monotonic() + 60
        while verified is None and time.monotonic() < deadline:
            audit = store.query("SELECT * FROM action_audit ORDER BY id")
            ok = audit[(audit.runbook == "replica-p99-drift") & (audit.status == "verified")]
            verified = ok.iloc[0] if len(ok) else None
            time.sleep(0.5)
        weights = {r["name"]: r["weight"] for r in lab.admin.state()["replicas"]}
        time.sleep(4)
        # requests sent after the reroute (those in flight on r2 before it still end slow)
        after = store.query("SELECT ts FROM action_audit WHERE runbook = 'replica-p99-drift' "
                            "AND phase = 'after'")
        since = float(after.ts.min()) if len(after) else time.time() - 4
        recent = store.query("SELECT latency_s FROM chains WHERE ts > ?", (since,))
        alerts = store.query("SELECT * FROM alerts WHERE status = 'firing' AND ts >= ?",
                             (fault_at,))
        audit = store.query("SELECT * FROM action_audit ORDER BY id")
    assert verified is not None, audit.to_dict("records")
    drift = alerts[alerts.alertname == "ReplicaP99Drift"]
    assert len(drift) and {json.loads(l)["replica"] for l in drift.labels} == {"r2"}
    applied = audit[(audit.runbook == "replica-p99-drift") & (audit.phase == "after")]
    assert len(applied) == 1 and applied.iloc[0].target.endswith("r2")
    assert weights["r2"] == 0 and weights["r0"] > 0 and weights["r1"] > 0
    p99 = float(np.percentile(recent.latency_s, 99))
    assert p99 < SLO_P99_S, p99
    detect_s = float(drift.ts.min()) - fault_at
    restored_s = float(verified.ts) - fault_at
    print(f"fault -> alert {detect_s:.1f} s, fault -> SLO verified {restored_s:.1f} s, "
          f"P99 after {p99 * 1e3:.0f} ms")
    assert restored_s < 15.0
