"""The signal rules as an engine hook: router state, scrapes, GPU readings and Triton queues in,
ReplicaHung, GpuThrottling and ModelSaturated alerts out.

Runs beside :class:`warden.detection.DetectionHook` on the same tick, after the collectors have
written the tick's samples and GPU readings, and reads:

* the router's admin state (``router()``; health, ejection, weight, outstanding per replica);
* the store's ``triton_up`` samples (did Warden's own scrape of each replica answer?);
* the store's ``gpu_readings`` (clocks-event reasons, clock, utilisation per device);
* the store's ``triton_queue_duration_seconds`` and ``triton_pending_requests`` per model and
  replica (and, without GPU readings, Triton's executions and compute time for utilisation).

Scores go through :class:`anomaly.rules.RuleEvaluator` with :data:`anomaly.signals.SIGNAL_RULES`
(``for`` durations, hysteresis); transitions are written to the ``alerts`` table (the one
detection writes) and handed to ``alert_sinks``, exactly as detection's are.

It also writes ``replica_utilization{model, replica}`` each tick (a recording rule, in
Prometheus' terms): the utilisation the saturation rule used, which runbook preconditions read
as an SLI (``budget-burn-overload`` sheds only when the fleet is busy).

Alerts carry ``model`` because runbooks act on a model (``reroute`` moves the model's weight on a
replica); a replica or device alert is raised once per model the fleet serves. A replica that
leaves the router (scaled in) has its replica alerts resolved rather than left firing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from anomaly.rules import AlertRule, RuleEvaluator
from anomaly.signals import (
    SIGNAL_RULES,
    HungRule,
    ReplicaLoad,
    ReplicaStatus,
    SaturationRule,
    ThrottleRule,
)
from warden.detection import ALERTS_DDL, AlertSink, alerts_table_rows
from warden.records import Alert, GpuReading, Sample, freeze_labels
from warden.store import Store
from warden.store_schema import gpu_from_row

__all__ = ["UTILIZATION_SERIES", "SignalHook"]

logger = logging.getLogger("warden.signals")
UTILIZATION_SERIES = "replica_utilization"
RouterState = Callable[[], Sequence[Mapping[str, Any]]]


class SignalHook:
    """Engine hook: fleet signals -> signal rules -> alerts.

    Args:
        store: read samples, GPU readings and chains; write alerts and ``replica_utilization``.
        models: the models the fleet serves now (each replica serves every one of them).
        router: the router's replicas, as its admin API lists them (``name``, ``healthy``,
            ``ejected``, ``weight``, ``outstanding``); ``None``: no router, no ReplicaHung, and
            every replica with data counts as serving.
        rules: the alert rules for the detectors ``replica_hung``, ``gpu_throttling`` and
            ``model_saturated``.
        alert_sinks: called every tick with the transitions (as detection's sinks are).
        window_s: how far back utilisation and queue time are averaged.
        clock: only for the age of the newest chain per replica (evidence).
    """

    def __init__(self, store: Store, *, models: Callable[[], Sequence[str]],
                 router: RouterState | None = None,
                 rules: Sequence[AlertRule] = SIGNAL_RULES,
                 alert_sinks: Sequence[AlertSink] = (),
                 hung: HungRule | None = None, throttle: ThrottleRule | None = None,
                 saturation: SaturationRule | None = None,
                 window_s: float = 3.0, clock: Callable[[], float] = time.time) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s must be a finite number > 0, got {window_s}")
        self.store = store
        self.models = models
        self.router = router
        self.rules = RuleEvaluator(tuple(rules))
        self.alert_sinks = list(alert_sinks)
        self.hung = hung or HungRule()
        self.throttle = throttle or ThrottleRule()
        self.saturation = saturation or SaturationRule()
        self.window_s = window_s
        self.clock = clock
        self.router_errors = 0
        self._gpu_after = -math.inf
        store.ensure_table("alerts", ALERTS_DDL, ts_column="ts")

    # -- per tick ------------------------------------------------------------------------------

    def __call__(self, now: float) -> None:
        models = list(self.models())
        routed = self._router_state()
        tick = _Tick(self._samples(now - max(self.window_s, UP_LOOKBACK_S), now))
        transitions: list[Alert] = []
        if routed is not None:
            transitions += self._hung(now, models, routed, tick)
        readings = self._gpu(now)
        transitions += self._throttling(now, models, readings)
        serving = None if routed is None else {
            r["name"] for r in routed
            if r.get("healthy", True) and not r.get("ejected", False) and r.get("weight", 1) > 0}
        recorded: list[Sample] = []
        for model in models:
            transitions += self._saturation(now, model, serving, tick, readings, recorded)
        if recorded:
            self.store.write_samples(recorded)
        if routed is not None:
            transitions += self._forget_gone(now, {r["name"] for r in routed})
        if transitions:
            self.store.insert_rows("alerts", ["ts", "fingerprint", "alertname", "status", "labels",
                                              "annotations", "starts_at", "ends_at"],
                                   alerts_table_rows(transitions, now))
            for a in transitions:
                logger.warning("alert %s %s %s", a.status.value, a.name, dict(a.labels))
        for sink in self.alert_sinks:
            sink(transitions, now)

    def firing(self) -> list[Alert]:
        return self.rules.firing()

    def pending(self) -> list[Alert]:
        return self.rules.pending()

    # -- the three rules ------------------------------------------------------------------------

    def _router_state(self) -> list[Mapping[str, Any]] | None:
        if self.router is None:
            return None
        try:
            return [r for r in self.router() if isinstance(r, Mapping) and "name" in r]
        except Exception as exc:  # a router that does not answer: hold every hung state
            self.router_errors += 1
            logger.debug("router state unreadable: %s", exc)
            return None

    def _hung(self, now: float, models: list[str], routed: list[Mapping[str, Any]],
              tick: _Tick) -> list[Alert]:
        up = {labels["replica"]: points[-1][1]
              for labels, points in tick.series("triton_up") if "replica" in labels}
        ages = self._chain_ages(now)
        statuses = [ReplicaStatus(
            name=str(r["name"]), healthy=bool(r.get("healthy", True)),
            ejected=bool(r.get("ejected", False)), weight=float(r.get("weight", 1.0)),
            outstanding=int(r.get("outstanding", 0)),
            scraped=None if str(r["name"]) not in up else up[str(r["name"])] > 0.5,
            last_chain_age_s=ages.get(str(r["name"]))) for r in routed]
        out: list[Alert] = []
        for replica, (score, evidence) in self.hung.score(statuses).items():
            for model in models:
                out += self.rules.observe("replica_hung", {"model": model, "replica": replica},
                                          now, score, evidence)
        return out

    def _gpu(self, now: float) -> list[GpuReading]:
        """The newest reading per (replica, device) in the window."""
        df = self.store.query(
            "SELECT g.* FROM gpu_readings g JOIN (SELECT replica, device, MAX(ts) AS ts "
            "FROM gpu_readings WHERE ts > ? AND ts <= ? GROUP BY replica, device) m "
            "ON g.replica = m.replica AND g.device = m.device AND g.ts = m.ts",
            (now - self.window_s, now))
        return [gpu_from_row(row) for row in df.to_dict("records") if row.get("replica")]

    def _throttling(self, now: float, models: list[str], readings: list[GpuReading]
                    ) -> list[Alert]:
        out: list[Alert] = []
        for reading in readings:
            if reading.ts <= self._gpu_after:
                continue  # scored at an earlier tick: this tick's reading did not come
            score, evidence = self.throttle.score(reading)
            for model in models:
                labels = {"model": model, "replica": reading.replica, "device": reading.device}
                out += self.rules.observe("gpu_throttling", labels, now, score, evidence)
        if readings:
            self._gpu_after = max(self._gpu_after, max(r.ts for r in readings))
        return out

    def _saturation(self, now: float, model: str, serving: set[str] | None, tick: _Tick,
                    readings: list[GpuReading], recorded: list[Sample]) -> list[Alert]:
        start = now - self.window_s
        queue = tick.replica_means("triton_queue_duration_seconds", model, start)
        pending = tick.replica_last_sums("triton_pending_requests", model, start)
        util = self._utilization(model, start, tick, readings)
        recorded += [Sample(UTILIZATION_SERIES, freeze_labels({"model": model, "replica": r}),
                            now, u) for r, u in util.items() if math.isfinite(u)]
        loads = [ReplicaLoad(r, util.get(r), queue.get(r), pending.get(r))
                 for r in sorted(set(queue) | set(util)) if serving is None or r in serving]
        score, evidence = self.saturation.score(loads)
        return self.rules.observe("model_saturated", {"model": model}, now, score, evidence)

    def _forget_gone(self, now: float, present: set[str]) -> list[Alert]:
        """Replica alerts of replicas the router no longer has: score 0 until they resolve."""
        out: list[Alert] = []
        for (detector, key) in list(self.rules.states):
            labels = dict(key)
            if "replica" in labels and labels["replica"] not in present:
                out += self.rules.observe(detector, labels, now, 0.0)
                state = self.rules.states.get((detector, key))
                if state is not None and state.status is None:
                    del self.rules.states[(detector, key)]
        return out

    # -- store readers --------------------------------------------------------------------------

    def _utilization(self, model: str, start: float, tick: _Tick,
                     readings: list[GpuReading]) -> dict[str, float]:
        """Busy fraction per replica: its GPU's latest reading (the busiest device; a reading
        is already an average over the device's own window), else Triton's executor for the
        model (executions/s x compute seconds per execution, averaged over the window)."""
        out: dict[str, float] = {}
        for r in readings:
            out[r.replica] = max(out.get(r.replica, 0.0), float(r.utilization))
        execs = tick.by_key("triton_execution_per_second", model, start)
        infer = tick.by_key("triton_compute_infer_duration_seconds", model, start)
        busy: dict[str, float] = {}
        for key, points in execs.items():
            compute = dict(infer.get(key, []))
            products = [v * compute[ts] for ts, v in points if ts in compute]
            if products:
                busy[key[0]] = busy.get(key[0], 0.0) + sum(products) / len(products)
        for replica, b in busy.items():
            out.setdefault(replica, min(max(b, 0.0), 1.0))
        return out

    def _samples(self, start: float, end: float) -> list[tuple[str, str, float, float]]:
        """(name, labels JSON, ts, value) of the series this hook reads, in ``[start, end]``."""
        marks = ", ".join("?" * len(READ_SERIES))
        df = self.store.query(
            f"SELECT s.name, s.labels, x.ts, x.value FROM samples x JOIN series s "
            f"ON s.id = x.series_id WHERE x.ts >= ? AND x.ts <= ? AND s.name IN ({marks}) "
            f"ORDER BY x.ts", (start, end, *READ_SERIES))
        return list(df.itertuples(index=False, name=None))

    def _chain_ages(self, now: float, lookback_s: float = 30.0) -> dict[str, float]:
        df = self.store.query("SELECT replica, MAX(ts) AS t FROM chains WHERE ts > ? "
                              "GROUP BY replica", (now - lookback_s,))
        return {str(r.replica): now - float(r.t) for r in df.itertuples() if r.replica}


UP_LOOKBACK_S = 5.0  # a scrape that timed out still counts as the replica's last word this long
READ_SERIES = ("triton_up", "triton_queue_duration_seconds", "triton_pending_requests",
               "triton_execution_per_second", "triton_compute_infer_duration_seconds")


class _Tick:
    """One tick's samples of :data:`READ_SERIES`, grouped by series, oldest first."""

    def __init__(self, rows: list[tuple[str, str, float, float]]) -> None:
        self._by: dict[str, dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]] = {}
        labels_of: dict[str, tuple[tuple[str, str], ...]] = {}
        for name, labels, ts, value in rows:
            key = labels_of.get(labels)
            if key is None:
                key = labels_of[labels] = freeze_labels(json.loads(labels))
            if value is not None and math.isfinite(value):
                self._by.setdefault(name, {}).setdefault(key, []).append((float(ts), value))

    def series(self, name: str) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        return [(dict(k), pts) for k, pts in self._by.get(name, {}).items()]

    def by_key(self, name: str, model: str, start: float
               ) -> dict[tuple[str, str], list[tuple[float, float]]]:
        """``(replica, variant) -> points`` since ``start`` for ``model``."""
        out = {}
        for labels, points in self.series(name):
            recent = [p for p in points if p[0] >= start]
            if labels.get("model") == model and "replica" in labels and recent:
                out[(labels["replica"], labels.get("variant", ""))] = recent
        return out

    def replica_means(self, name: str, model: str, start: float) -> dict[str, float]:
        """Mean per replica since ``start``, the largest over variants (the busier executor)."""
        out: dict[str, float] = {}
        for (replica, _), points in self.by_key(name, model, start).items():
            mean = sum(v for _, v in points) / len(points)
            out[replica] = max(out.get(replica, mean), mean)
        return out

    def replica_last_sums(self, name: str, model: str, start: float) -> dict[str, float]:
        """The newest value per replica since ``start``, summed over variants."""
        out: dict[str, float] = {}
        for (replica, _), points in self.by_key(name, model, start).items():
            out[replica] = out.get(replica, 0.0) + points[-1][1]
        return out
