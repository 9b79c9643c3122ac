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

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

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
from warden.records import Alert, Sample, freeze_labels
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
        transitions: list[Alert] = []
        if routed is not None:
            transitions += self._hung(now, models, routed)
        transitions += self._throttling(now, models)
        serving = None if routed is None else {
            r["name"] for r in routed
            if r.get("healthy", True) and not r.get("ejected", False) and r.get("weight", 1) > 0}
        for model in models:
            transitions += self._saturation(now, model, serving)
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

    def _hung(self, now: float, models: list[str], routed: list[Mapping[str, Any]]
              ) -> list[Alert]:
        up = self._last_values("triton_up", now - max(self.window_s, 5.0), now)
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

    def _throttling(self, now: float, models: list[str]) -> list[Alert]:
        since = max(self._gpu_after, now - self.window_s)  # readings not scored yet, if recent
        df = self.store.query("SELECT * FROM gpu_readings WHERE ts > ? AND ts <= ? ORDER BY ts",
                              (since, now))
        if df.empty:
            return []
        self._gpu_after = float(df["ts"].max())
        out: list[Alert] = []
        latest = df.groupby(["replica", "device"], sort=True).tail(1)
        for row in latest.to_dict("records"):
            reading = gpu_from_row(row)
            if not reading.replica:
                continue
            score, evidence = self.throttle.score(reading)
            for model in models:
                labels = {"model": model, "replica": reading.replica, "device": reading.device}
                out += self.rules.observe("gpu_throttling", labels, now, score, evidence)
        return out

    def _saturation(self, now: float, model: str, serving: set[str] | None) -> list[Alert]:
        start = now - self.window_s
        queue = self._means("triton_queue_duration_seconds", {"model": model}, start, now)
        pending = self._last_values("triton_pending_requests", start, now, {"model": model},
                                    reduce="sum")
        util = self._utilization(model, start, now)
        replicas = sorted(set(queue) | set(util))
        self._record_utilization(model, util, now)
        loads = [ReplicaLoad(r, util.get(r), queue.get(r), pending.get(r)) for r in replicas
                 if serving is None or r in serving]
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

    def _utilization(self, model: str, start: float, end: float) -> dict[str, float]:
        """Busy fraction per replica: its GPU's (mean over the window, busiest device), else
        Triton's executor for the model (executions/s x compute seconds per execution)."""
        out: dict[str, float] = {}
        gpu = self.store.query("SELECT replica, device, AVG(utilization) AS u FROM gpu_readings "
                               "WHERE ts > ? AND ts <= ? GROUP BY replica, device", (start, end))
        for r in gpu.itertuples():
            if r.replica and r.u is not None:
                out[str(r.replica)] = max(out.get(str(r.replica), 0.0), float(r.u))
        execs = self.store.series("triton_execution_per_second", {"model": model}, start,
                                  end + 1e-6)
        infer = self.store.series("triton_compute_infer_duration_seconds", {"model": model},
                                  start, end + 1e-6)
        if execs.empty or infer.empty:
            return out
        both = pd.merge(execs, infer, on=["ts", "replica", "variant"], suffixes=("_e", "_i"))
        both["busy"] = both["value_e"] * both["value_i"]
        for replica, g in both.groupby("replica"):
            if str(replica) not in out:
                busy = g.groupby("variant")["busy"].mean().sum()
                out[str(replica)] = float(min(max(busy, 0.0), 1.0))
        return out

    def _record_utilization(self, model: str, util: Mapping[str, float], now: float) -> None:
        samples = [Sample(UTILIZATION_SERIES, freeze_labels({"model": model, "replica": r}), now,
                          float(u)) for r, u in util.items() if math.isfinite(u)]
        if samples:
            self.store.write_samples(samples)

    def _means(self, name: str, labels: Mapping[str, str], start: float, end: float
               ) -> dict[str, float]:
        """Mean per replica over the window (the largest over variants: the busier executor)."""
        df = self.store.series(name, labels, start, end + 1e-6)  # [start, end]: this tick's too
        if df.empty or "replica" not in df:
            return {}
        by = ["replica", "variant"] if "variant" in df else ["replica"]
        means = df.groupby(by)["value"].mean()
        return {str(k): float(v) for k, v in means.groupby(level=0).max().items()}

    def _last_values(self, name: str, start: float, end: float,
                     labels: Mapping[str, str] | None = None, *, reduce: str = "last"
                     ) -> dict[str, float]:
        """The newest value per replica in ``(start, end]`` (summed over variants: ``sum``)."""
        df = self.store.series(name, labels, start, end + 1e-6)
        if df.empty or "replica" not in df:
            return {}
        by = [c for c in ("replica", "variant") if c in df]
        last = df.groupby(by, sort=False).tail(1)
        agg = last.groupby("replica")["value"]
        vals = agg.sum() if reduce == "sum" else agg.last()
        return {str(k): float(v) for k, v in vals.items()}

    def _chain_ages(self, now: float, lookback_s: float = 30.0) -> dict[str, float]:
        df = self.store.query("SELECT replica, MAX(ts) AS t FROM chains WHERE ts > ? "
                              "GROUP BY replica", (now - lookback_s,))
        return {str(r.replica): now - float(r.t) for r in df.itertuples() if r.replica}
