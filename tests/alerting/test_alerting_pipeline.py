"""Lifecycle, grouping timers, inhibition, silences, dedup/repeat, rate limit, outbox enqueue."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from warden.alerting.grouping import (
    DEFAULT_GROUP_INTERVAL_S,
    DEFAULT_GROUP_WAIT_S,
    DEFAULT_REPEAT_INTERVAL_S,
    AlertGrouper,
    Route,
)
from warden.alerting.inhibit import REPLICA_DOWN_MUTES_LATENCY, Inhibitor
from warden.alerting.lifecycle import AlertTracker
from warden.alerting.matchers import MatcherError, parse_matcher
from warden.alerting.outbox import Outbox
from warden.alerting.pipeline import (
    DEFERRED,
    NOTIFIED,
    SUPPRESSED,
    DedupStage,
    Dispatcher,
    InhibitStage,
    NotificationLog,
    OutboxStage,
    Pipeline,
    RateLimitStage,
    SilenceStage,
)
from warden.alerting.silences import SilenceError, SilenceStore, parse_duration
from warden.db import open_db
from warden.records import Alert, AlertStatus, freeze_labels

T0 = 1_800_000_000.0


def firing(name: str, replica: str = "r0", starts: float = T0, **extra: str) -> Alert:
    labels = {"alertname": name, "replica": replica, "model": "mlp", **extra}
    return Alert(freeze_labels(labels), freeze_labels({"summary": name}), starts, None,
                 AlertStatus.FIRING)


def resolved(a: Alert, at: float) -> Alert:
    return replace(a, status=AlertStatus.RESOLVED, ends_at=at)


def test_alertmanager_default_timers() -> None:
    assert (DEFAULT_GROUP_WAIT_S, DEFAULT_GROUP_INTERVAL_S, DEFAULT_REPEAT_INTERVAL_S) == (
        30.0, 300.0, 14400.0)
    r = Route("oncall")
    assert (r.group_wait_s, r.group_interval_s, r.repeat_interval_s) == (30.0, 300.0, 14400.0)
    with pytest.raises(ValueError):
        Route("x", group_interval_s=0)


def test_lifecycle_pending_firing_resolved() -> None:
    tr = AlertTracker(for_s=10)
    cond = {freeze_labels({"alertname": "Hot"}): {"summary": "hot"}}
    t = tr.evaluate(T0, cond)
    assert [x.alert.status for x in t] == [AlertStatus.PENDING] and tr.firing() == []
    assert tr.evaluate(T0 + 5, cond) == []
    t = tr.evaluate(T0 + 10, cond)
    assert t[0].alert.status is AlertStatus.FIRING and t[0].previous is AlertStatus.PENDING
    assert t[0].alert.starts_at == T0 + 10 and len(tr.firing()) == 1
    t = tr.evaluate(T0 + 20, {})
    assert t[0].alert.status is AlertStatus.RESOLVED and t[0].alert.ends_at == T0 + 20
    assert tr.firing() == []
    # a pending alert that stops holding just vanishes
    tr.evaluate(T0 + 30, cond)
    assert tr.evaluate(T0 + 31, {}) == [] and tr.pending() == []


def test_grouper_waits_then_flushes_each_interval() -> None:
    g = AlertGrouper(Route("oncall", group_by=("alertname",), group_wait_s=30,
                           group_interval_s=300))
    g.add(firing("Lat", "r0"), T0)
    g.add(firing("Lat", "r1"), T0 + 10)
    g.add(firing("Other"), T0 + 10)
    assert g.tick(T0 + 29) == []
    flushes = g.tick(T0 + 30)
    assert [f.group_key for f in flushes] == ['{}:{alertname="Lat"}']
    assert len(flushes[0].alerts) == 2 and flushes[0].seq == 0
    assert [f.group_key for f in g.tick(T0 + 40)] == ['{}:{alertname="Other"}']
    assert g.tick(T0 + 300) == []  # not yet a full interval since the first flush
    f2 = g.tick(T0 + 330)
    assert len(f2) == 1 and f2[0].seq == 1


def test_grouper_ignores_pending_and_drops_resolved_after_flush() -> None:
    g = AlertGrouper(Route("oncall", group_wait_s=0, group_interval_s=60))
    a = firing("Lat")
    assert not g.add(replace(a, status=AlertStatus.PENDING), T0)
    g.add(a, T0)
    (f,) = g.tick(T0)
    g.flushed(f, done=True)
    g.add(resolved(a, T0 + 5), T0 + 5)
    (f,) = g.tick(T0 + 60)
    g.flushed(f, done=False)  # deferred: the resolved alert must stay
    assert len(g.alerts()) == 1
    (f,) = g.tick(T0 + 120)
    g.flushed(f, done=True)
    assert g.alerts() == [] and g.groups() == []


def test_matchers_parse_and_match() -> None:
    assert parse_matcher('alertname=~"High.*"').matches({"alertname": "HighP99"})
    assert not parse_matcher("alertname=~High").matches({"alertname": "HighP99"})  # anchored
    assert parse_matcher("replica!=r0").matches({})
    assert parse_matcher("x!~a|b").matches({"x": "c"})
    for bad in ("noop", "=x", "a=~(", "1a=b"):
        with pytest.raises(MatcherError):
            parse_matcher(bad)


def test_replica_down_inhibits_latency_on_that_replica_only() -> None:
    down = firing("ReplicaDown", "r0")
    sources = [down]
    inh = Inhibitor([REPLICA_DOWN_MUTES_LATENCY], lambda: sources)
    assert inh.muted_by(firing("HighP99Latency", "r0")) == down
    assert inh.muted_by(firing("HighP99Latency", "r1")) is None
    assert inh.muted_by(firing("GpuHot", "r0")) is None
    sources[0] = resolved(down, T0 + 1)  # a resolved source no longer inhibits
    assert inh.muted_by(firing("HighP99Latency", "r0")) is None


def test_silences_expire_and_persist(tmp_path) -> None:
    store = SilenceStore(open_db(tmp_path / "s.db"))
    sil = store.add(["alertname=HighP99Latency", "replica=~r[01]"], now=T0, duration_s=600,
                    created_by="alice", comment="deploy")
    assert store.muting({"alertname": "HighP99Latency", "replica": "r1"}, T0 + 1) == [sil.id]
    assert store.muting({"alertname": "HighP99Latency", "replica": "r2"}, T0 + 1) == []
    assert store.muting({"alertname": "HighP99Latency", "replica": "r1"}, T0 + 600) == []
    store.expire(sil.id, now=T0 + 60)
    other = SilenceStore(open_db(tmp_path / "s.db"))  # another process sees it
    assert other.get(sil.id).state(T0 + 61) == "expired"
    assert other.muting({"alertname": "HighP99Latency", "replica": "r1"}, T0 + 61) == []
    with pytest.raises(SilenceError):
        store.add([], now=T0, duration_s=60)
    with pytest.raises(SilenceError):
        store.expire("nope", now=T0)
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("", "-5", "5x", "h", "0s"):
        with pytest.raises(SilenceError):
            parse_duration(bad)


def _world(tmp_path, route: Route, *, rate: RateLimitStage | None = None):
    conn = open_db(tmp_path / "w.db")
    outbox, silences, nflog = Outbox(conn), SilenceStore(conn), NotificationLog()
    holder: list[Dispatcher] = []
    inhibitor = Inhibitor([REPLICA_DOWN_MUTES_LATENCY], lambda: holder[0].alerts())
    stages = [InhibitStage(inhibitor), SilenceStage(silences), DedupStage(nflog)]
    if rate is not None:
        stages.append(rate)
    stages.append(OutboxStage(outbox, nflog, external_url="http://warden:8080"))
    d = Dispatcher([(route, Pipeline(stages))])
    holder.append(d)
    return d, outbox, silences


def test_dispatcher_dedup_repeat_and_resolve(tmp_path) -> None:
    route = Route("oncall", group_by=("alertname",), group_wait_s=0, group_interval_s=60,
                  repeat_interval_s=600)
    d, outbox, _ = _world(tmp_path, route)
    a = firing("HighP99Latency", "r0")
    d.add([a], T0)
    assert [o for _, o in d.tick(T0)] == [NOTIFIED]
    d.add([a], T0 + 30)
    assert [o for _, o in d.tick(T0 + 60)] == [SUPPRESSED]  # nothing new
    b = firing("HighP99Latency", "r1")
    d.add([b], T0 + 70)
    assert [o for _, o in d.tick(T0 + 120)] == [NOTIFIED]  # a new firing alert
    assert [o for _, o in d.tick(T0 + 180)] == [SUPPRESSED]
    assert [o for _, o in d.tick(T0 + 720)] == [NOTIFIED]  # repeat_interval passed
    d.add([resolved(a, T0 + 730), resolved(b, T0 + 730)], T0 + 730)
    assert [o for _, o in d.tick(T0 + 780)] == [NOTIFIED]
    assert d.alerts() == []
    items = sorted(outbox.items(), key=lambda i: i.id)
    assert [i.status for i in items] == ["firing", "firing", "firing", "resolved"]
    assert len({i.idempotency_key for i in items}) == 4  # the repeat has its own key
    last = json.loads(items[-1].body)
    assert last["status"] == "resolved" and len(last["alerts"]) == 2
    assert all(x["status"] == "resolved" for x in last["alerts"])
    assert last["groupKey"] == '{}:{alertname="HighP99Latency"}'


def test_dispatcher_inhibits_and_silences(tmp_path) -> None:
    route = Route("oncall", group_by=("alertname", "replica"), group_wait_s=0,
                  group_interval_s=60)
    d, outbox, silences = _world(tmp_path, route)
    d.add([firing("ReplicaDown", "r0"), firing("HighP99Latency", "r0"),
           firing("HighP99Latency", "r1"), firing("GpuHot", "r2")], T0)
    silences.add(["alertname=GpuHot"], now=T0, duration_s=300)
    out = {f.group_key: o for f, o in d.tick(T0)}
    assert out['{}:{alertname="HighP99Latency", replica="r0"}'] == SUPPRESSED  # inhibited
    assert out['{}:{alertname="GpuHot", replica="r2"}'] == SUPPRESSED  # silenced
    assert out['{}:{alertname="ReplicaDown", replica="r0"}'] == NOTIFIED
    assert out['{}:{alertname="HighP99Latency", replica="r1"}'] == NOTIFIED
    assert outbox.counts()["pending"] == 2
    # the silence expires: the next interval notifies GpuHot
    out = {f.group_key: o for f, o in d.tick(T0 + 360)}
    assert out['{}:{alertname="GpuHot", replica="r2"}'] == NOTIFIED


def test_rate_limit_defers_without_losing(tmp_path) -> None:
    route = Route("oncall", group_by=("alertname",), group_wait_s=0, group_interval_s=10)
    d, outbox, _ = _world(tmp_path, route,
                          rate=RateLimitStage(max_per_window=2, window_s=60))
    d.add([firing(f"A{i}") for i in range(3)], T0)
    outcomes = sorted(o for _, o in d.tick(T0))
    assert outcomes == [DEFERRED, NOTIFIED, NOTIFIED]
    assert sorted(o for _, o in d.tick(T0 + 10)) == [DEFERRED, SUPPRESSED, SUPPRESSED]
    assert sorted(o for _, o in d.tick(T0 + 61)) == [NOTIFIED, SUPPRESSED, SUPPRESSED]
    assert outbox.counts()["pending"] == 3


def test_reenqueue_keeps_key_and_row(tmp_path) -> None:
    """A restarted engine that re-makes the same notification writes no second row."""
    route = Route("oncall", group_wait_s=0, group_interval_s=60)
    for _ in range(2):
        d, outbox, _ = _world(tmp_path, route)
        d.add([firing("Lat")], T0)
        d.tick(T0)
    assert outbox.counts()["pending"] == 1
