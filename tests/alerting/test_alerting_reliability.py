"""At-least-once delivery through outages, 500s, timeouts and a SIGKILLed delivery process.

The engine side (grouping, pipeline, outbox enqueue) runs in this process on a fake clock, so
group intervals are exact; delivery runs in a real subprocess (``python -m
warden.alerting.worker``) against the same SQLite file, to a real HTTP receiver that the test
takes down, makes answer 500, makes answer slower than the worker's timeout, and makes slow
while the worker is killed with SIGKILL mid-request and restarted.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from warden.alerting.config import load_alerting_config
from warden.alerting.pipeline import NOTIFIED
from warden.alerting.service import AlertingService
from warden.alerting.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from warden.db import open_db
from warden.records import Alert, AlertStatus, freeze_labels

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRET = "rel-" + "H4ck" * 5
GROUPS = [(name, rep) for name in ("HighP99Latency", "GpuHot") for rep in ("r0", "r1", "r2")]
INTERVAL = 10.0  # fake seconds


def start_worker(db: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WARDEN_WEBHOOK_HMAC_SECRET": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "warden.alerting.worker", "--db", str(db),
         "--target", f"oncall={url}", "--timeout", "1.0", "--backoff-base", "0.1",
         "--backoff-max", "0.5", "--poll", "0.05"],
        env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop_worker(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def test_every_notification_arrives_despite_faults_and_sigkill(tmp_path, recording_server) -> None:
    db = tmp_path / "warden.db"
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": recording_server.url}],
        "routes": [{"receiver": "oncall", "group_by": ["alertname", "replica"],
                    "group_wait_s": 0, "group_interval_s": INTERVAL}],
        "rate_limit_per_minute": 1000})
    fake = [time.time() - 1000.0]  # in the past: rows are due at once for the real worker
    svc = AlertingService(cfg, open_db(db), registry=CollectorRegistry(), clock=lambda: fake[0],
                          notifiers={})
    made: list[str] = []
    alerts_made: dict[str, Alert] = {}

    def batch(tag: str) -> list[Alert]:
        """One interval: each group gets two new alerts, added 1 s apart (one notification)."""
        out = []
        for k in range(2):
            new = [Alert(freeze_labels({"alertname": n, "replica": r, "instance": f"{tag}-{k}"}),
                         freeze_labels({"summary": f"{n} on {r}"}), fake[0], None,
                         AlertStatus.FIRING) for n, r in GROUPS]
            svc.dispatcher.add(new, fake[0])
            out += new
            fake[0] += 1.0
        fake[0] += INTERVAL  # next interval
        for flush, outcome in svc.dispatcher.tick(fake[0]):
            if outcome == NOTIFIED:
                made.append(flush.group_key)
        for a in out:
            alerts_made[a.fingerprint] = a
        return out

    log = tmp_path / "worker.log"
    worker = start_worker(db, recording_server.url, log)
    try:
        batch("ok")                                     # A: receiver fine
        time.sleep(0.5)
        recording_server.stop()                         # B: receiver down
        batch("down")
        time.sleep(1.5)
        recording_server.start()
        recording_server.mode = "error"                 # C: 500s
        batch("err")
        time.sleep(1.5)
        recording_server.mode, recording_server.delay_s = "slow", 1.5  # D: past the timeout
        batch("slow")
        time.sleep(2.0)
        recording_server.mode, recording_server.delay_s = "ok", 0.6    # E: kill mid-delivery
        before = recording_server.attempts
        last = batch("kill")
        deadline = time.monotonic() + 10
        while recording_server.attempts == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recording_server.attempts > before, "worker never reached the receiver"
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        in_flight_at_kill = recording_server.attempts
        recording_server.delay_s = 0.0
        # resolve the last batch: one "resolved" notification per group
        svc.dispatcher.add([replace(a, status=AlertStatus.RESOLVED, ends_at=fake[0])
                            for a in last], fake[0])
        fake[0] += INTERVAL
        made += [f.group_key for f, o in svc.dispatcher.tick(fake[0]) if o == NOTIFIED]
        worker = start_worker(db, recording_server.url, log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and svc.outbox.counts()["pending"]:
            time.sleep(0.1)
    finally:
        stop_worker(worker)

    counts = svc.outbox.counts()
    assert counts == {"pending": 0, "delivered": len(made), "dead": 0}, counts
    got = recording_server.snapshot()
    keys = collections.Counter(r.headers[IDEMPOTENCY_HEADER] for r in got)
    made_keys = {i.idempotency_key for i in svc.outbox.items(limit=1000)}
    assert len(made_keys) == len(made)                  # distinct keys == notifications made
    assert set(keys) == made_keys                       # every key arrived at least once
    assert in_flight_at_kill > 0 and max(keys.values()) >= 2  # re-sent after timeout / SIGKILL
    by_key: dict[str, bytes] = {}
    for r in got:                                       # a re-send is byte-identical, and signed
        k = r.headers[IDEMPOTENCY_HEADER]
        assert by_key.setdefault(k, r.body) == r.body
        assert r.headers[SIGNATURE_HEADER] == sign(SecretStr(SECRET), r.headers[TIMESTAMP_HEADER],
                                                   r.body)
    delivered_fps = {a["fingerprint"] for b in by_key.values() for a in json.loads(b)["alerts"]
                     if a["status"] == "firing"}
    assert delivered_fps == set(alerts_made)            # every alert was delivered
    # grouping: exactly one notification per group per interval with news (5 batches + resolve)
    per_group = collections.Counter(made)
    assert len(per_group) == len(GROUPS) and set(per_group.values()) == {6}
    for body in by_key.values():
        msg = json.loads(body)
        assert len({(a["labels"]["alertname"], a["labels"]["replica"])
                    for a in msg["alerts"]}) == 1       # one group per message
    text = log.read_text()
    assert SECRET not in text
    # the faults really happened: refused connections, 500s and timeouts were each retried
    assert "ConnectError" in text and "HTTP 500" in text and "timeout" in text
    assert max(i.attempts for i in svc.outbox.items(limit=1000)) >= 2
