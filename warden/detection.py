"""Detection on the lab: each tick, feed new request chains to per-replica detectors.

Why chains: every request's latency, per model and replica, is the finest signal Warden has,
and its stages say *where* time grew (DESIGN.md: Triton's own summaries are costly and not
mergeable). Each (model, replica) key gets its own detectors (P99 drift and variance by
default), fitted on that key's history in the store when first seen, and restored from their
saved state across restarts.

Chains land in the store a few seconds after the request (the joiner waits for late spans), and
not in time order. Each tick reads the chains *written* since the last tick (a rowid
watermark, so nothing waits on a fixed delay and a lagging receiver delays detection only by
its own lag), sorted by request time; a chain older than what a detector already saw is
rejected and counted by that detector (``rejected_``), so time never goes backwards for it. A
chain rewritten when late spans arrive comes back with the same timestamp and is rejected the
same way, so it is never counted twice.

A replica's first ``warmup_s`` of requests are not learned from: cold caches and connection set-up
make them several times slower than steady state, and a P99 seeded from them stayed inflated
for the whole run (the quantile tracker comes down by 1% of a step per point), which hid a
doubled latency from the drift detector (measured on a recorded lab run: never within 20 s
when seeded from the first second, at once when seeded after it).

A replica alerts only when it also stands out from its peers (same model, other replicas): when
the whole host or model slows down, every replica drifts from its own baseline together, and a
per-replica page would point at the wrong place once per replica. And a P99 drift alarm holds
only while the replica's recent P99 (its last 50 requests) is above its baseline's: the drift
statistic outlives the drift by up to ~140 requests, and keeps what it gathered while its
peers were as slow. (Seen twice in the chaos suite: a replica's score, built up during the
experiment before, fired after it ended, with its own P99 at 36 ms against a 44-48 ms baseline,
and a runbook rerouted around a healthy replica.)

Scores go to the rules (:mod:`anomaly.rules`); ``Anomaly`` records are written while a score is
over its threshold, and alert transitions go to the ``alerts`` table and to ``alert_sinks``
(the alerting pipeline, remediation).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anomaly.registry import make_detector
from anomaly.rules import DEFAULT_RULES, AlertRule, RuleEvaluator
from warden.records import Alert, AlertStatus, Anomaly, Stage, freeze_labels
from warden.store import Store

__all__ = ["DetectionHook", "ALERTS_DDL", "alerts_table_rows"]

logger = logging.getLogger("warden.detection")
STAGE_NAMES = [s.value for s in Stage]

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts);
"""
STATE_DDL = """
CREATE TABLE IF NOT EXISTS detector_state (
    key TEXT NOT NULL, detector TEXT NOT NULL, ts REAL NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (key, detector)
);
"""
AlertSink = Callable[[list[Alert], float], None]

DEFAULT_DETECTORS: dict[str, dict[str, Any]] = {
    # A P99 needs a few hundred points before it means anything: with fewer, the seeded
    # baseline's tail is the sample maximum's noise and ordinary requests look like drift.
    # h=15: five exceedances in a row reach 0.5, or a sustained 10% exceedance rate in about
    # 150 points; host-wide stalls are kept out by the peer comparison, not by a high h.
    "p99_drift": {"min_points": 300, "h": 15.0},
    "variance": {"min_points": 300},
}


def alerts_table_rows(alerts: Iterable[Alert], ts: float) -> list[tuple[Any, ...]]:
    return [(ts, a.fingerprint, a.name, a.status.value, json.dumps(dict(a.labels)),
             json.dumps(dict(a.annotations)), a.starts_at, a.ends_at) for a in alerts]


@dataclass
class _KeyState:
    """Detectors and evidence for one (model, replica)."""

    detectors: dict[str, Any]
    recent: deque[tuple[float, str, float, dict[str, float], float | None]] = field(
        default_factory=lambda: deque(maxlen=200))
    stage_baseline: dict[str, float] = field(default_factory=dict)
    clock_baseline: float | None = None
    learn_from: float = 0.0  # chains before this are the replica's cold start


class DetectionHook:
    """Engine hook: chains -> detectors -> anomalies -> rules -> alerts.

    Args:
        store: read chains, write anomalies, alerts and detector state.
        detectors: detector names (``anomaly.registry``) run per key, with their parameters.
        rules: one rule per detector.
        alert_sinks: called with alert transitions (firing/resolved) and the tick time.
        max_batch: most chains read in one tick (a backlog drains over several ticks).
        peer_ratio: a replica alerts only if its recent median (or jitter) is this many times its
            peers' median; with no peers, its own baseline alone decides.
        history_s: how much of a key's history fits its detectors when first seen.
        warmup_s: a key's requests this soon after its first one are skipped (cold start).
    """

    def __init__(
        self,
        store: Store,
        *,
        detectors: dict[str, dict[str, Any]] | None = None,
        rules: Sequence[AlertRule] = DEFAULT_RULES,
        alert_sinks: Sequence[AlertSink] = (),
        history_s: float = 3600.0,
        save_every_ticks: int = 30,
        max_batch: int = 20_000,
        peer_ratio: float = 1.25,
        warmup_s: float = 5.0,
    ) -> None:
        self.store = store
        self.detector_params = detectors or dict(DEFAULT_DETECTORS)
        self.rules = RuleEvaluator(tuple(rules))
        self.thresholds = {r.detector: r.fire_at for r in rules}
        self.alert_sinks = list(alert_sinks)
        self.history_s = history_s
        self.save_every_ticks = save_every_ticks
        self.keys: dict[tuple[str, str], _KeyState] = {}
        self.max_batch = max_batch
        self.peer_ratio = peer_ratio
        self.warmup_s = warmup_s
        self.watermark = int(store.query("SELECT COALESCE(MAX(rowid), 0) AS m FROM chains")
                             .iloc[0]["m"])
        self.points = 0
        self._ticks = 0
        store.ensure_table("alerts", ALERTS_DDL, ts_column="ts")
        store.ensure_table("detector_state", STATE_DDL)

    # -- per tick ------------------------------------------------------------------------------

    def __call__(self, now: float) -> None:
        chains = self.store.query(
            "SELECT rowid AS rid, trace_id, ts, model, replica, latency_s, error, "
            + ", ".join(f"stage_{s} AS {s}" for s in STAGE_NAMES)
            + ", gpu FROM chains WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (self.watermark, self.max_batch))
        if len(chains):
            self.watermark = int(chains.rid.max())
            chains = chains.sort_values("ts", kind="stable")
        scores: dict[tuple[str, str], dict[str, float]] = {}
        for row in chains.itertuples(index=False):
            if row.error:
                continue
            key = (row.model, row.replica)
            ks = self.keys.get(key) or self._new_key(key, now)
            if row.ts < ks.learn_from:
                continue
            stages = {s: float(v) for s in STAGE_NAMES
                      if (v := getattr(row, s)) is not None and v == v}
            clock = _sm_clock(row.gpu)
            ks.recent.append((float(row.ts), row.trace_id, float(row.latency_s), stages, clock))
            per = scores.setdefault(key, {})
            for name, det in ks.detectors.items():
                s = det.update(float(row.ts), float(row.latency_s))
                per[name] = max(per.get(name, 0.0), s)
            self.points += 1
            if max(per.values()) < 0.3:
                _learn(ks, stages, clock)
        transitions: list[Alert] = []
        anomalies: list[Anomaly] = []
        for key, per in scores.items():
            ks = self.keys[key]
            labels = {"model": key[0], "replica": key[1]}
            for name, score in per.items():
                evidence = self._evidence(ks, name)
                ratio = self._peer_ratio(key, name)
                if ratio is not None:
                    evidence["vs_peers"] = round(ratio, 2)
                    if ratio < self.peer_ratio:
                        # Its peers are as slow (or as noisy): the host or the whole model
                        # moved, not this replica; a per-replica alert would point at the
                        # wrong place and page once per replica.
                        score = min(score, 0.0)
                if name in TAIL_DETECTORS and not _tail_above_baseline(evidence):
                    score = min(score, 0.0)  # a stale drift statistic (see the module doc)
                if score >= self.thresholds.get(name, 1.1):
                    anomalies.append(Anomaly(
                        ts=now, detector=name, series="request_latency_seconds",
                        labels=freeze_labels(labels), score=score,
                        baseline=evidence.get("baseline_p99_s", float("nan")),
                        observed=evidence.get("observed_p99_s", float("nan")), evidence=evidence))
                transitions += self.rules.observe(name, labels, now, score, evidence)
        if anomalies:
            self.store.write_anomalies(anomalies)
        if transitions:
            self.store.insert_rows("alerts", ["ts", "fingerprint", "alertname", "status", "labels",
                                              "annotations", "starts_at", "ends_at"],
                                   alerts_table_rows(transitions, now))
            for a in transitions:
                logger.warning("alert %s %s %s", a.status.value, a.name, dict(a.labels))
        for sink in self.alert_sinks:
            sink(transitions, now)
        self._ticks += 1
        if self._ticks % self.save_every_ticks == 0:
            self.save_state(now)

    # -- keys, evidence, state --------------------------------------------------------------------

    def _new_key(self, key: tuple[str, str], now: float) -> _KeyState:
        dets = {name: make_detector(name, **params) for name, params in self.detector_params.items()}
        saved = self.store.query("SELECT detector, state FROM detector_state WHERE key = ?",
                                 (json.dumps(key),))
        restored = {r.detector: json.loads(r.state) for r in saved.itertuples()}
        first = self.store.query("SELECT MIN(ts) AS t FROM chains WHERE model = ? AND replica = ?",
                                 key).iloc[0]["t"]
        learn_from = (float(first) if first == first and first is not None else now) + self.warmup_s
        history = self.store.query(
            "SELECT ts, latency_s AS value FROM chains WHERE model = ? AND replica = ? "
            "AND error = 0 AND ts > ? AND ts >= ? AND rowid <= ? ORDER BY ts",
            (key[0], key[1], now - self.history_s, learn_from, self.watermark))
        for name, det in dets.items():
            if name in restored:
                det.load_state_dict(restored[name])
            else:
                det.fit(history if len(history) else None)
        ks = _KeyState(dets, learn_from=learn_from)
        self.keys[key] = ks
        return ks

    def armed(self, key: tuple[str, str]) -> bool:
        """Whether every detector of ``key`` (model, replica) has learned its baseline.

        A fault injected before this is learned as the replica's normal, not detected: tests
        and chaos experiments wait on it instead of sleeping a guessed warm-up.
        """
        ks = self.keys.get(key)
        return ks is not None and all(
            getattr(getattr(det, "baseline_", None), "ready", True)
            for det in ks.detectors.values())

    def _peer_ratio(self, key: tuple[str, str], detector: str) -> float | None:
        """This replica's recent median latency (or jitter) over the median of its peers'.

        ``None`` when the model has no peer with recent data to compare against.
        """
        stat = _jitter if detector == "variance" else _level
        own = self.keys[key]
        since = (own.recent[-1][0] if own.recent else 0.0) - PEER_FRESH_S
        mine = stat(own, since)
        peers = [v for (m, r), ks in self.keys.items()
                 if m == key[0] and r != key[1] and (v := stat(ks, since)) is not None]
        if mine is None or not peers:
            return None
        base = float(np.median(peers))
        return mine / base if base > 0 else None

    def _evidence(self, ks: _KeyState, detector: str) -> dict[str, Any]:
        recent = list(ks.recent)[-50:]
        lat = np.array([r[2] for r in recent])
        det = ks.detectors[detector]
        base = getattr(det, "baseline_", None)
        ev: dict[str, Any] = {"observed_p99_s": round(float(np.percentile(lat, 99)), 6),
                              "observed_p50_s": round(float(np.median(lat)), 6)}
        looked = base.lookup(recent[-1][0]) if base is not None else None
        if looked is not None:
            ev["baseline_p50_s"] = round(float(looked[0]), 6)
            ev["baseline_p99_s"] = round(float(looked[2]), 6)
        deltas = {}
        for stage, b in ks.stage_baseline.items():
            vals = [r[3][stage] for r in recent if stage in r[3]]
            if vals:
                deltas[stage] = round((float(np.median(vals)) - b) * 1e3, 3)
        if deltas:
            ev["stage_delta_ms"] = deltas
            ev["grown_stage"] = max(deltas, key=deltas.get)
        clocks = [r[4] for r in recent if r[4] is not None]
        if clocks and ks.clock_baseline:
            ev["gpu_sm_clock_mhz"] = round(float(np.median(clocks)), 1)
            ev["gpu_sm_clock_baseline_mhz"] = round(ks.clock_baseline, 1)
        slowest = sorted(recent, key=lambda r: r[2], reverse=True)[:3]
        ev["slowest_trace_ids"] = ",".join(r[1] for r in slowest)
        return ev

    def save_state(self, now: float) -> None:
        rows = [(json.dumps(key), name, now, json.dumps(det.state_dict()))
                for key, ks in self.keys.items() for name, det in ks.detectors.items()]
        if rows:
            self.store.insert_rows("detector_state", ["key", "detector", "ts", "state"], rows,
                                   replace=True)

    def firing(self) -> list[Alert]:
        return self.rules.firing()

    def alerts(self, status: AlertStatus | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM alerts" + (" WHERE status = ?" if status else "") + " ORDER BY ts"
        return self.store.query(q, (status.value,) if status else ()).to_dict("records")


PEER_WINDOW = 60
TAIL_DETECTORS = frozenset({"p99_drift"})  # alarms that claim the tail is above its baseline
PEER_FRESH_S = 30.0  # a peer that got no traffic lately (drained, rerouted) is no reference


def _tail_above_baseline(evidence: dict[str, Any]) -> bool:
    """Whether the recent window's P99 is over the baseline's (true when either is unknown)."""
    observed, baseline = evidence.get("observed_p99_s"), evidence.get("baseline_p99_s")
    return observed is None or baseline is None or observed > baseline


def _recent(ks: _KeyState, since: float) -> list[float]:
    return [r[2] for r in list(ks.recent)[-PEER_WINDOW:] if r[0] >= since]


def _level(ks: _KeyState, since: float) -> float | None:
    """Median of the recent window: steady from tick to tick, unlike a tail quantile of 60
    points, which one host stall decides (and a flickering gate would restart ``for``)."""
    lat = _recent(ks, since)
    return float(np.median(lat)) if len(lat) >= 10 else None


def _jitter(ks: _KeyState, since: float) -> float | None:
    lat = np.array(_recent(ks, since))
    return float(np.mean(np.abs(np.diff(lat)))) if len(lat) >= 10 else None


def _sm_clock(gpu_json: str | None) -> float | None:
    if not gpu_json:
        return None
    try:
        return float(json.loads(gpu_json).get("sm_clock_mhz"))
    except (ValueError, TypeError):
        return None


def _learn(ks: _KeyState, stages: dict[str, float], clock: float | None, rate: float = 0.02) -> None:
    """Slow EWMA of each stage (and the GPU clock) while the key looks normal."""
    for stage, v in stages.items():
        b = ks.stage_baseline.get(stage)
        ks.stage_baseline[stage] = v if b is None else b + rate * (v - b)
    if clock is not None:
        ks.clock_baseline = clock if ks.clock_baseline is None else (
            ks.clock_baseline + rate * (clock - ks.clock_baseline))
