"""The autoscaler: reactive thresholds with HPA-style stabilisation, plus a seasonal forecast.

Reactive (:class:`ReactiveScaler`): utilisation above ``high`` (or queue time above
``queue_high_s``) recommends ``max(n + 1, ceil(n * util / high))``, where a saturated fleet's
utilisation is scaled by demand over served load (its backlog's growth shows the demand a
utilisation capped at 1 hides, see :mod:`remediation.store_signals`); below ``low`` recommends
``ceil(n * util / high)`` (the fewest replicas that keep utilisation under ``high`` afterwards, so
a scale-in cannot itself trigger a scale-out); in between, hold. Recommendations are stabilised as
the Kubernetes HPA does (``stabilizeRecommendationWithBehaviors``): scale up to the *minimum*
recommendation over the up window, down to the *maximum* over the down window (300 s by default),
so a noisy signal around a threshold does not flap the fleet. Missing data recommends the current
count and is recorded as such: a silent source holds, and never scales in (kedacore/keda#965).

Predictive (:class:`PredictiveScaler`): additive Holt-Winters on the load (requests per second)
forecasts the load one cold start (plus one sync period) ahead, so a replica ordered now is ready
when the diurnal peak arrives; replicas = ``ceil(forecast / (capacity * high))``. Scale-in waits
until the forecast stays low for ``keep_leads`` leads: giving back a replica the next rise needs
costs a cold start of SLO violation, keeping it a little longer costs replica-seconds.

:class:`Autoscaler` combines them (``max`` of the two: the forecast only adds capacity ahead of
need), ticks every ``sync_period_s`` and applies through :class:`~remediation.applier.Applier`,
so every guard and the audit hold for it too.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediation.applier import Applier, Outcome
from remediation.changes import Change
from remediation.holtwinters import HoltWinters
from warden.records import stable_key

__all__ = ["Autoscaler", "AutoscalerConfig", "PredictiveScaler", "ReactiveScaler", "Signals",
           "hpa_defaults"]


class AutoscalerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    high: float = Field(0.7, gt=0, le=1)
    low: float = Field(0.3, ge=0, lt=1)
    queue_high_s: float | None = Field(0.05, gt=0)
    sync_period_s: float = Field(5.0, gt=0)
    scale_up_stabilization_s: float = Field(0.0, ge=0)
    scale_down_stabilization_s: float = Field(120.0, ge=0)
    max_step_up: int = Field(4, ge=1)
    predictive: bool = False
    season_s: float = Field(600.0, gt=0, description="the diurnal period (compressed in labs)")
    bucket_s: float = Field(10.0, gt=0, description="forecast sample step")
    keep_leads: float = Field(
        2.0, ge=1, description="no scale-in while the forecast needs the replicas within this "
        "many leads (cold start + sync): a replica let go now returns only a lead after it is "
        "ordered, and a forecast learned from a saturated season can be late by a bucket or two")
    replica_capacity_rps: float | None = Field(None, gt=0,
                                               description="None: estimated from util and load")
    degrade_first: bool = Field(False, description="when a scale-out's cold start exceeds "
                                "slo_budget_s, send degrade_fraction to lite until it is ready")
    slo_budget_s: float = Field(10.0, gt=0)
    degrade_fraction: float = Field(0.5, gt=0, le=1)
    lite_cost: float = Field(0.4, gt=0, le=1, description="lite's cost relative to full")


def hpa_defaults(**overrides: object) -> AutoscalerConfig:
    """A reactive-only config shaped like the Kubernetes HPA's defaults (15 s sync, 300 s
    scale-down stabilisation, no scale-up stabilisation), for baselines."""
    cfg = dict(sync_period_s=15.0, scale_down_stabilization_s=300.0,
               scale_up_stabilization_s=0.0, predictive=False, queue_high_s=None)
    cfg.update(overrides)
    return AutoscalerConfig(**cfg)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Signals:
    """One model's signals at one tick; ``None`` where the source is silent."""

    utilization: float | None
    queue_s: float | None = None
    load_rps: float | None = None  # served
    demand_rps: float | None = None  # served + backlog growth (what was asked)

    @property
    def fresh(self) -> bool:
        return self.utilization is not None and math.isfinite(self.utilization)


class ReactiveScaler:
    """Threshold recommendations, stabilised over windows like the HPA."""

    def __init__(self, config: AutoscalerConfig) -> None:
        self.config = config
        self._recs: deque[tuple[float, int]] = deque()

    def raw(self, current: int, s: Signals, ready: int | None = None) -> int:
        """The unstabilised recommendation. ``ready``: replicas serving now (utilisation is
        measured over them); replicas still starting count as capacity on the way, so a scale-out
        is not ordered again every tick of a cold start (the overshoot HPA avoids by treating
        unready pods as idle)."""
        c = self.config
        if not s.fresh:
            return current
        util = float(s.utilization)  # type: ignore[arg-type]
        if s.load_rps and s.demand_rps and s.demand_rps > s.load_rps:
            # saturated: utilisation caps at 1 and hides the rest of the demand; scale it by
            # what was asked over what was served, so one step covers the whole surge
            util *= s.demand_rps / s.load_rps
        base = current if ready is None else max(min(ready, current), 1)
        need = math.ceil(base * util / c.high)
        queue_hot = (c.queue_high_s is not None and s.queue_s is not None
                     and s.queue_s > c.queue_high_s)
        if util > c.high or queue_hot:
            want = max(need, current + 1) if base >= current else max(need, current)
            return min(want, current + c.max_step_up)
        if util < c.low and base >= current:
            return max(1, need)
        return current

    def recommend(self, now: float, current: int, s: Signals, *, floor: int | None = None,
                  ready: int | None = None) -> int:
        """Stabilised recommendation; ``floor`` (the forecast's) joins the window, so what the
        forecast added is not scaled in again on the next tick."""
        c = self.config
        raw = self.raw(current, s, ready)
        if floor is not None and s.fresh:
            raw = max(raw, min(floor, current + c.max_step_up))
        self._recs.append((now, raw))
        horizon = max(c.scale_up_stabilization_s, c.scale_down_stabilization_s)
        while self._recs and self._recs[0][0] < now - horizon:
            self._recs.popleft()
        up = min(r for t, r in self._recs if t >= now - c.scale_up_stabilization_s)
        down = max(r for t, r in self._recs if t >= now - c.scale_down_stabilization_s)
        if current < up:
            return up
        if current > down:
            return down
        return current


class PredictiveScaler:
    """Holt-Winters on load, bucketed; recommends replicas for the load a cold start ahead."""

    def __init__(self, config: AutoscalerConfig) -> None:
        self.config = config
        self.season = max(2, int(round(config.season_s / config.bucket_s)))
        self.model: HoltWinters | None = None
        self._bucket: tuple[int, list[float]] | None = None
        self._history: list[float] = []
        self.capacity_rps: float | None = config.replica_capacity_rps
        self.last_forecast: float | None = None

    def observe(self, now: float, current: int, s: Signals) -> None:
        """Feed one tick's load; closes a bucket when time moves past it. ``current``: the
        replicas the utilisation was measured over (the ready ones: counting replicas still
        starting would underestimate each one's capacity and over-provision)."""
        if s.load_rps is None or not math.isfinite(s.load_rps):
            return
        if (self.config.replica_capacity_rps is None and s.fresh and current > 0
                and (s.utilization or 0) > 0.2):
            est = s.load_rps / (float(s.utilization) * current)  # type: ignore[arg-type]
            self.capacity_rps = est if self.capacity_rps is None else (
                0.9 * self.capacity_rps + 0.1 * est)
        idx = int(now // self.config.bucket_s)
        if self._bucket is None:
            self._bucket = (idx, [])
        if idx != self._bucket[0]:
            self._close(idx)
        # forecast what was asked: served load flattens the peaks a saturated fleet missed
        asked = s.demand_rps if s.demand_rps is not None and s.demand_rps > s.load_rps else (
            s.load_rps)
        self._bucket[1].append(float(asked))

    def _close(self, idx: int) -> None:
        assert self._bucket is not None
        last_idx, values = self._bucket
        value = sum(values) / len(values) if values else (self._history[-1] if self._history
                                                          else 0.0)
        for _ in range(min(idx - last_idx, self.season)):  # gaps: carry the last value
            self._push(value)
        self._bucket = (idx, [])

    def _push(self, value: float) -> None:
        if self.model is None:
            self._history.append(value)
            if len(self._history) >= 2 * self.season:
                self.model = HoltWinters(self.season).fit(self._history)
        else:
            self.model.update(value)
            self._history.append(value)
            del self._history[:-4 * self.season]

    def seed(self, history: list[float]) -> None:
        """Fit on past buckets (e.g. read from the store) instead of waiting two seasons."""
        self._history = list(history)
        if len(history) >= 2 * self.season:
            self.model = HoltWinters(self.season).fit(history)

    def recommend(self, lead_s: float) -> int | None:
        if self.model is None or not self.capacity_rps:
            return None
        # forecast(1) is the bucket still filling (the model has seen up to the one before),
        # so one more than lead/bucket: with ceil(lead/bucket) alone the horizon fell short of
        # now + lead by up to a bucket, and a scale-in let go of capacity a rise needed
        h = math.ceil(lead_s / self.config.bucket_s) + 1
        # the peak of the next h buckets, not only the h-th: the replica must be there through it
        peak = max(self.model.forecast(k) for k in range(1, h + 1))
        self.last_forecast = peak
        return max(1, math.ceil(peak / (self.capacity_rps * self.config.high)))


def _restore_util(util: float, fraction: float, lite_cost: float) -> float:
    """Utilisation once the lite share goes back to full: cost rises by 1/(1 - f(1-c))."""
    return util / (1.0 - fraction * (1.0 - lite_cost))


class Autoscaler:
    """Ticks the scalers for one model and applies their decision through the applier.

    Args:
        model: the model to scale.
        applier: guards + audit + actuator.
        signals: ``now -> Signals`` (utilisation, queue time, load), read from the store.
        clock: injected time.
        cold_start_s: measured cold start; ``None`` reads it from the actuator's state.
    """

    def __init__(self, model: str, config: AutoscalerConfig, applier: Applier,
                 signals: Callable[[float], Signals], *, clock: Callable[[], float],
                 cold_start_s: float | None = None, name: str = "autoscaler") -> None:
        self.model = model
        self.config = config
        self.applier = applier
        self.signals = signals
        self.clock = clock
        self.cold_start_s = cold_start_s
        self.name = name
        self.reactive = ReactiveScaler(config)
        self.predictive = PredictiveScaler(config) if config.predictive else None
        self._last_sync = -math.inf
        self.decisions: list[tuple[float, int, int, str]] = []  # (ts, current, desired, why)

    def _degrade_or_restore(self, now: float, cold_start_s: float, model: Any,
                            scaling_out: bool, s: Signals) -> None:
        """Degrade before a slow scale-out; restore once every replica is ready and the full
        variant's cost would still fit under ``high``. Both go through the guards."""
        c = self.config
        frac = model.lite_fraction
        slow = math.isfinite(cold_start_s) and cold_start_s > c.slo_budget_s
        if scaling_out and slow and frac < c.degrade_fraction:
            change = Change("variant", self.model, {"variant": "lite",
                                                    "fraction": c.degrade_fraction},
                            target=f"{self.model}/variant",
                            inverse=Change("variant", self.model,
                                           {"variant": "lite", "fraction": frac},
                                           target=f"{self.model}/variant"))
            self.applier.apply(change, runbook=self.name, step="degrade-first",
                               key=stable_key(self.name, self.model, "degrade", now),
                               execution=stable_key(self.name, self.model, now),
                               evidence={"cold_start_s": cold_start_s,
                                         "slo_budget_s": c.slo_budget_s})
        elif (not scaling_out and frac > 0 and model.healthy >= model.replicas
              and _restore_util(float(s.utilization), frac, c.lite_cost) < c.high):  # type: ignore[arg-type]
            change = Change("variant", self.model, {"variant": "lite", "fraction": 0.0},
                            target=f"{self.model}/variant", reduces_capacity=True)
            self.applier.apply(change, runbook=self.name, step="restore-full",
                               key=stable_key(self.name, self.model, "restore", now),
                               execution=stable_key(self.name, self.model, now),
                               evidence={"utilization": s.utilization}, data_fresh=s.fresh)

    def tick(self) -> Outcome | None:
        now = self.clock()
        if now - self._last_sync < self.config.sync_period_s:
            return None
        self._last_sync = now
        state = self.applier.actuator.state()
        current = state.model(self.model).replicas
        ready = state.model(self.model).healthy
        s = self.signals(now)
        ahead = keep = None
        if self.predictive is not None:
            self.predictive.observe(now, ready, s)  # utilisation is over the ready ones
            cold = self.cold_start_s if self.cold_start_s is not None else state.cold_start_s
            lead = (cold if math.isfinite(cold) else 30.0) + self.config.sync_period_s
            keep = self.predictive.recommend(self.config.keep_leads * lead)
            ahead = self.predictive.recommend(lead)
        desired = self.reactive.recommend(now, current, s, floor=ahead, ready=ready)
        if keep is not None and s.fresh and desired < current:  # keep is None iff ahead is
            desired = min(current, max(desired, keep))  # no scale-in the forecast undoes soon
        why = "hold"
        if desired != current:
            why = ("predictive" if ahead is not None and desired == min(
                ahead, current + self.config.max_step_up) and desired > self.reactive.raw(
                current, s, ready) else "reactive")
        if not s.fresh:
            why = "hold: metrics silent"
        self.decisions.append((now, current, desired, why))
        model = state.model(self.model)
        if self.config.degrade_first and s.fresh:
            self._degrade_or_restore(now, state.cold_start_s, model, desired > current, s)
        if desired == current:
            return None
        change = Change("scale", self.model, {"replicas": desired},
                        reduces_capacity=desired < current,
                        inverse=Change("scale", self.model, {"replicas": current}))
        key = stable_key(self.name, self.model, int(now // self.config.sync_period_s), desired)
        return self.applier.apply(change, runbook=self.name, step=why, key=key,
                                  execution=stable_key(self.name, self.model, now),
                                  evidence={"utilization": s.utilization, "queue_s": s.queue_s,
                                            "load_rps": s.load_rps, "current": current},
                                  data_fresh=s.fresh)
