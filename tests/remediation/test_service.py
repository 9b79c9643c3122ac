"""The engine-facing facade: config validation, start-up reconcile, handle in a worker, ticks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from remediation.actuators.dryrun import DryRun
from remediation.autoscaler import Signals
from remediation.changes import Change
from remediation.service import RemediationConfig, RemediationService
from remediation.sli import StaticSli
from warden.records import Alert, AlertStatus, freeze_labels


def test_config_rejects_unknown_keys_naming_them():
    with pytest.raises(ValidationError, match="cooldwn_s"):
        RemediationConfig.model_validate({"guards": {"cooldwn_s": 5}})


def test_service_reconciles_handles_and_ticks(clock, audit):
    fleet = DryRun.simple({"synth": 2})
    # a previous engine died after claiming a scale to 2 (which the fleet shows)
    audit.record(runbook="saturation", step="scale-out", change=Change("scale", "synth",
                 {"replicas": 2}), key="old", phase="before", status="applying")
    cfg = RemediationConfig.model_validate({"autoscaler": {"models": ["synth"],
                                                           "sync_period_s": 5},
                                            "guards": {"cooldown_s": 0}})
    svc = RemediationService(cfg, fleet, audit, StaticSli(lambda n, l, now: 0.05),
                             signals=lambda m, now: Signals(0.95), clock=clock,
                             sleep=clock.sleep)
    try:
        [(row, status)] = svc.start()
        assert status == "applied" and row.idempotency_key == "old"
        fut = svc.handle(Alert(freeze_labels({"alertname": "ReplicaP99Drift", "model": "synth",
                                              "replica": "r1"}), (), clock(), None,
                               AlertStatus.FIRING))
        assert fut is not None and fut.result(timeout=10)[0].outcome == "verified"
        assert svc.handle(Alert(freeze_labels({"alertname": "Nothing"}), (), 0, None,
                                AlertStatus.FIRING)) is None
        svc.tick()
        assert fleet.replicas("synth") == 3  # max(n + 1, ceil(2 * 0.95 / 0.7))
    finally:
        svc.stop()


def test_engine_hook_scales_in_the_background_one_pass_at_a_time(audit):
    """A scale-out blocks through a cold start; the engine's tick must not, and a second pass
    must not start while the first still waits for its replicas."""
    import threading
    import time

    release = threading.Event()

    class SlowStartFleet(DryRun):
        def scale(self, model: str, n: int) -> None:
            release.wait(10)  # the cold start
            super().scale(model, n)

    fleet = SlowStartFleet.simple({"synth": 2})
    cfg = RemediationConfig.model_validate({"autoscaler": {"models": ["synth"],
                                                           "sync_period_s": 0.01},
                                            "guards": {"cooldown_s": 0}})
    svc = RemediationService(cfg, fleet, audit, StaticSli(lambda n, l, now: 0.05),
                             signals=lambda m, now: Signals(0.95), clock=time.time)
    try:
        t0 = time.monotonic()
        assert svc.tick_in_background(time.time()) is True
        time.sleep(0.1)
        assert svc.tick_in_background(time.time()) is False  # the first pass still scales
        assert time.monotonic() - t0 < 1.0  # neither call waited for the cold start
        assert fleet.replicas("synth") == 2
        release.set()
        deadline = time.monotonic() + 5
        while fleet.replicas("synth") != 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fleet.replicas("synth") == 3
        assert len(fleet.applied("scale")) == 1
    finally:
        svc.stop()
