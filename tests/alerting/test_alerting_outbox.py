"""The durable outbox and its dispatcher, against a real HTTP receiver, with a fake clock."""

from __future__ import annotations

import json
import random

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from warden.alerting.outbox import Backoff, Outbox, OutboxDispatcher
from warden.alerting.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryResult,
    WebhookNotifier,
    sign,
)
from warden.db import open_db

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _setup(tmp_path, server, *, timeout_s: float = 2.0, dead_after_s: float = 3600.0,
           secret: str | None = None):
    clock = FakeClock()
    outbox = Outbox(open_db(tmp_path / "o.db"))
    registry = CollectorRegistry()
    notifier = WebhookNotifier(server.url, timeout_s=timeout_s,
                               hmac_secret=SecretStr(secret) if secret else None,
                               wall_clock=clock)
    disp = OutboxDispatcher(outbox, {"oncall": notifier}, clock=clock, rng=random.Random(7),
                            backoff=Backoff(base_s=1, max_s=16), dead_after_s=dead_after_s,
                            registry=registry)
    return clock, outbox, disp, registry


def _enqueue(outbox: Outbox, n: int, now: float = T0) -> None:
    for i in range(n):
        assert outbox.enqueue(key=f"k{i}", target="oncall", group_key="g", status="firing",
                              body=json.dumps({"n": i}), now=now)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    b = Backoff(base_s=1, factor=2, max_s=8)
    assert [b.delay(n, 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    assert [b.delay(n, 0.0) for n in range(1, 4)] == [0.5, 1, 2]
    with pytest.raises(ValueError):
        Backoff(base_s=0)


def test_delivers_with_stable_key_and_valid_signature(tmp_path, recording_server) -> None:
    clock, outbox, disp, registry = _setup(tmp_path, recording_server, secret="hmac-" + "x" * 20)
    _enqueue(outbox, 2)
    assert outbox.enqueue(key="k0", target="oncall", group_key="g", status="firing",
                          body="{}", now=T0) is False  # same key: no second row
    assert disp.run_once() == 2
    got = recording_server.snapshot()
    assert [r.headers[IDEMPOTENCY_HEADER] for r in got] == ["k0", "k1"]
    for r in got:
        ts = r.headers[TIMESTAMP_HEADER]
        assert r.headers[SIGNATURE_HEADER] == sign(SecretStr("hmac-" + "x" * 20), ts, r.body)
    assert outbox.counts() == {"pending": 0, "delivered": 2, "dead": 0}
    assert registry.get_sample_value("warden_alert_outbox_attempts_total",
                                     {"target": "oncall", "result": "delivered"}) == 2


def test_500s_then_recovery_keeps_key_and_drains_at_once(tmp_path, recording_server) -> None:
    clock, outbox, disp, _ = _setup(tmp_path, recording_server)
    _enqueue(outbox, 5)
    recording_server.mode = "error"
    assert disp.run_once() == 0
    assert recording_server.attempts == 1  # one probe per pass, not one request per row
    waits = []
    for _ in range(4):
        nxt = outbox.next_due_at()
        waits.append(nxt - clock.t)
        clock.t = nxt
        assert disp.run_once() == 0
    assert waits[-1] > waits[0] * 3  # exponential growth (jitter within [0.5, 1])
    recording_server.mode = "ok"
    clock.t = outbox.next_due_at()
    delivered = disp.run_once()
    delivered += disp.run_once()  # the expedited rest
    assert delivered == 5
    keys = [r.headers[IDEMPOTENCY_HEADER] for r in recording_server.snapshot()]
    assert sorted(keys) == [f"k{i}" for i in range(5)]
    first = outbox.items(state="delivered")
    assert max(i.attempts for i in first) == 6  # the probe row: 5 failures then success


def test_rows_written_while_target_backs_off_wait_with_it(tmp_path, recording_server) -> None:
    clock, outbox, disp, _ = _setup(tmp_path, recording_server)
    recording_server.mode = "error"
    _enqueue(outbox, 1)
    disp.run_once()
    for i in range(5):  # new notifications while the receiver is failing
        outbox.enqueue(key=f"new{i}", target="oncall", group_key="g", status="firing",
                       body="{}", now=clock.t)
        disp.run_once()
    assert recording_server.attempts == 1  # no probe per new row
    assert all(i.next_attempt_at > clock.t for i in outbox.items())
    recording_server.mode = "ok"
    clock.t = outbox.next_due_at()
    assert disp.run_once() + disp.run_once() == 6


def test_timeout_is_retryable(tmp_path, recording_server) -> None:
    clock, outbox, disp, _ = _setup(tmp_path, recording_server, timeout_s=0.3)
    _enqueue(outbox, 1)
    recording_server.mode, recording_server.delay_s = "slow", 1.0
    assert disp.run_once() == 0
    (item,) = outbox.items()
    assert item.state == "pending" and "timeout" in item.last_error
    recording_server.mode, recording_server.delay_s = "ok", 0.0
    clock.t = item.next_attempt_at
    assert disp.run_once() == 1


def test_dead_letter_after_configured_time(tmp_path, recording_server) -> None:
    clock, outbox, disp, _ = _setup(tmp_path, recording_server, dead_after_s=60)
    _enqueue(outbox, 3)
    recording_server.stop()  # receiver down: connection refused
    disp.run_once()
    clock.t = T0 + 61
    disp.run_once()
    assert outbox.counts() == {"pending": 0, "delivered": 0, "dead": 3}


class Refusing:
    def deliver(self, body: bytes, *, idempotency_key: str) -> DeliveryResult:
        return DeliveryResult(False, False, 400, "HTTP 400")


class Exploding:
    def deliver(self, body: bytes, *, idempotency_key: str) -> DeliveryResult:
        raise RuntimeError("bug in a notifier")


def test_non_retryable_is_dead_and_notifier_bug_is_retried(tmp_path) -> None:
    outbox = Outbox(open_db(tmp_path / "o.db"))
    for i, target in enumerate(("refusing", "exploding", "unknown")):
        outbox.enqueue(key=f"k{i}", target=target, group_key="g", status="firing", body="{}",
                       now=T0)
    disp = OutboxDispatcher(outbox, {"refusing": Refusing(), "exploding": Exploding()},
                            clock=FakeClock(), rng=random.Random(1), registry=CollectorRegistry())
    assert disp.run_once() == 0
    states = {i.target: i.state for i in outbox.items()}
    assert states == {"refusing": "dead", "exploding": "pending", "unknown": "pending"}
