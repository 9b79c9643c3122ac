"""The lab with telemetry on: every request's chain lands in the store, and the requests the
router sends deep (``trace_deep_ratio``, here a half so both kinds are plenty) are whole, client
to GPU; the others stop at the router (Triton is not asked to trace them).

Stated tolerance for "stages add up": the server-side stages (router, Triton HTTP, queue,
compute input/infer/output) never exceed the client's latency by more than 0.5 ms, and what is
left (the client's own time: encoding, its event loop, the loopback hop) has a median under
10 ms. The client span starts at the request's *scheduled* time (open loop), so a busy client
shows up in that residual rather than hiding.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from serving.router.tracing import goes_deep
from warden.config import load_config
from warden.lab import Lab
from warden.records import Stage
from warden.store import Store

pytestmark = pytest.mark.slow

SERVER_STAGES = ["router", "triton_http", "queue", "compute_input", "compute_infer",
                 "compute_output"]


def test_chains_are_complete_and_add_up_and_collectors_fill_the_store(tmp_path: Path) -> None:
    config = load_config(home=tmp_path, lab={
        "replicas": 2, "router_port": 0, "traffic": {"kind": "constant", "rate": 30},
        "trace_deep_ratio": 0.5},
        fleet={"models": ["synth", "mlp"]})
    with Lab(config) as lab:
        time.sleep(8)
        summary = lab.loadgen.stop() if lab.loadgen else None
        sent = {r.trace_id for r in lab.loadgen.results} if lab.loadgen else set()
        store = Store(config.db_path, readonly=True)
        # Chains land after the joiner's settle time and the exporters' batching delays.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chains = store.chains()
            if chains.trace_id.isin(sent).sum() >= len(sent):
                break
            time.sleep(0.5)
        series = set(store.list_series()["name"])
        gpu = store.gpu_readings()
    assert summary is not None and summary.ok > 150 and summary.errors == 0
    chains = chains[chains.trace_id.isin(sent)]
    assert len(chains) >= 0.95 * len(sent)
    assert chains.client.notna().all() and (chains.replica != "").all()
    stages = [s.value for s in Stage]
    is_deep = chains.trace_id.map(lambda t: goes_deep(int(t, 16), 0.5))
    deep, shallow = chains[is_deep], chains[~is_deep]
    assert 0.3 * len(chains) < len(deep) < 0.7 * len(chains)
    complete = deep.dropna(subset=stages)
    assert len(complete) >= 0.95 * len(deep)
    triton_stages = ["router", "triton_http", "queue", "compute_infer", "model_code"]
    assert shallow[triton_stages].isna().all().all()  # no Triton trace without the context
    assert set(complete.model) == {"synth", "mlp"} and set(complete.replica) == {"r0", "r1"}
    assert complete.gpu.notna().all()
    assert all('"simulated":true' in g.replace(" ", "") for g in complete.gpu)
    assert (complete.model_code <= complete.compute_infer + 1e-6).all()
    server = complete[SERVER_STAGES].sum(axis=1)
    residual_ms = (complete.client - server) * 1e3
    assert (residual_ms >= -0.5).all(), residual_ms.min()
    assert np.median(residual_ms) < 10.0, np.median(residual_ms)
    assert {"triton_request_success_per_second", "triton_queue_duration_seconds",
            "triton_compute_infer_duration_seconds", "triton_pending_requests"} <= series
    assert set(gpu.replica) == {"r0", "r1"} and gpu.simulated.all()
