"""The autoscaler with injected time: stabilisation, no flapping, missing data, prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from remediation.applier import Applier
from remediation.audit import AuditLog
from remediation.autoscaler import (
    Autoscaler,
    AutoscalerConfig,
    PredictiveScaler,
    ReactiveScaler,
    Signals,
    hpa_defaults,
)
from remediation.guards import GuardConfig, Guards
from remediation.holtwinters import HoltWinters
from remediation.simulated import SimulatedFleet, diurnal


def test_reactive_thresholds():
    r = ReactiveScaler(AutoscalerConfig())
    assert r.raw(2, Signals(0.9)) == 3            # ceil(2 * .9 / .7) = 3
    assert r.raw(4, Signals(0.95)) == 6
    assert r.raw(4, Signals(0.2)) == 2            # ceil(4 * .2 / .7): stays under 70% after
    assert r.raw(4, Signals(0.5)) == 4
    assert r.raw(2, Signals(0.5, queue_s=0.2)) == 3  # queue time alone scales out
    assert r.raw(4, Signals(None)) == 4           # silence holds


def test_scale_down_uses_max_over_window_like_hpa():
    r = ReactiveScaler(AutoscalerConfig(scale_down_stabilization_s=300))
    assert r.recommend(0, 4, Signals(0.6)) == 4
    # load drops at t=10: no scale-in until the window forgets the t=0 recommendation
    assert all(r.recommend(t, 4, Signals(0.1)) == 4 for t in range(10, 300, 15))
    assert r.recommend(301, 4, Signals(0.1)) == 1


def test_missing_data_holds_and_blocks_scale_in_afterwards(clock, audit):
    fleet = SimulatedFleet(replicas_=4)
    sig = {"s": Signals(0.5)}
    a = Autoscaler("synth", AutoscalerConfig(scale_down_stabilization_s=60, sync_period_s=5),
                   Applier(fleet, Guards(GuardConfig(cooldown_s=0), clock=clock), audit,
                           clock=clock), lambda now: sig["s"], clock=clock)
    a.tick()
    sig["s"] = Signals(None)  # the metrics source goes silent for 10 minutes
    for _ in range(120):
        clock.advance(5)
        a.tick()
    assert fleet.replicas_ == 4 and fleet.scale_calls == 0
    assert a.decisions[-1][3] == "hold: metrics silent"
    # data returns, low: the silent ticks counted as "hold" in the window, so no instant scale-in
    sig["s"] = Signals(0.1)
    clock.advance(5)
    a.tick()
    assert fleet.replicas_ == 4
    for _ in range(13):
        clock.advance(5)
        a.tick()
    assert fleet.replicas_ == 1


def test_no_flapping_on_a_noisy_signal_around_the_threshold(clock, audit):
    rng = np.random.default_rng(7)
    fleet = SimulatedFleet(replicas_=3, cold_start_s=0)
    a = Autoscaler("synth", AutoscalerConfig(sync_period_s=5, scale_down_stabilization_s=120),
                   Applier(fleet, Guards(GuardConfig(cooldown_s=0, max_actions_per_hour=1000),
                                         clock=clock), audit, clock=clock),
                   lambda now: Signals(float(np.clip(0.5 + rng.normal(0, 0.12), 0, 1.5))),
                   clock=clock)
    for _ in range(720):  # an hour at 5 s
        a.tick()
        clock.advance(5)
    directions = [1 if d > c else -1 for _, c, d, _ in a.decisions if d != c]
    reversals = sum(1 for x, y in zip(directions, directions[1:]) if x != y)
    # noise crosses 70% now and then: a few scale-outs, scale-ins held by the window
    assert fleet.scale_calls <= 12 and reversals <= 6


def test_holt_winters_forecasts_a_season_ahead():
    m = 30
    t = np.arange(m * 4)
    y = 100 + 60 * np.sin(2 * np.pi * t / m) + np.random.default_rng(1).normal(0, 3, len(t))
    hw = HoltWinters(m).fit(y[: m * 3])
    pred = [hw.forecast(h) for h in range(1, m + 1)]
    truth = 100 + 60 * np.sin(2 * np.pi * t[m * 3:] / m)
    assert np.mean(np.abs(np.array(pred) - truth)) < 8
    with pytest.raises(ValueError, match="2 seasons"):
        HoltWinters(m).fit(y[:40])
    with pytest.raises(ValueError, match="NaN"):
        HoltWinters(m).fit(np.r_[y[:80], math.nan])


def run_day(predictive: bool, tmp_path, clock_cls) -> tuple[float, int]:
    """Two compressed days (600 s each) on the same traffic; returns violation s, actions."""
    clock = clock_cls(0.0)
    fleet = SimulatedFleet(replicas_=2, capacity_rps=50, cold_start_s=40)
    load = {"rps": 0.0}
    cfg = AutoscalerConfig(sync_period_s=5, scale_down_stabilization_s=60, predictive=predictive,
                           season_s=600, bucket_s=10, replica_capacity_rps=50)
    guards = Guards(GuardConfig(cooldown_s=0, max_actions_per_hour=1000, max_replicas=16),
                    clock=clock)
    audit = AuditLog.open(tmp_path / f"p{int(predictive)}.db", clock=clock)
    a = Autoscaler("synth", cfg, Applier(fleet, guards, audit, clock=clock),
                   lambda now: Signals(fleet.utilization(load["rps"]), load_rps=load["rps"]),
                   clock=clock)
    violation = 0.0
    for step in range(3 * 600):
        now = float(step)
        clock.t = now
        fleet.advance(now)
        load["rps"] = diurnal(now, base=40, peak=400, period_s=600)
        a.tick()
        if step >= 2 * 600 and fleet.p99_s(load["rps"]) > 0.4:  # score the third day
            violation += 1.0
    return violation, fleet.scale_calls


def test_predictive_beats_reactive_on_a_diurnal_day(tmp_path, clock):
    clock_cls = type(clock)
    reactive, _ = run_day(False, tmp_path, clock_cls)
    predictive, actions = run_day(True, tmp_path, clock_cls)
    assert reactive > 0
    assert predictive < 0.5 * reactive
    assert actions < 200


def test_hpa_defaults_shape():
    c = hpa_defaults()
    assert c.sync_period_s == 15 and c.scale_down_stabilization_s == 300 and not c.predictive


def test_degrade_first_when_cold_start_is_slow_then_restore(clock, audit):
    fleet = SimulatedFleet(replicas_=2, capacity_rps=50, cold_start_s=30)
    load = {"rps": 90.0}
    cfg = AutoscalerConfig(sync_period_s=5, degrade_first=True, slo_budget_s=10,
                           degrade_fraction=0.5, scale_down_stabilization_s=600)
    a = Autoscaler("synth", cfg, Applier(fleet, Guards(GuardConfig(cooldown_s=0), clock=clock),
                                         audit, clock=clock),
                   lambda now: Signals(fleet.utilization(load["rps"])), clock=clock)
    fleet.advance(clock())
    a.tick()
    assert fleet.lite_fraction == 0.5 and fleet.replicas_ == 3   # degraded at once, scaling
    for _ in range(12):  # the new replica becomes ready after 30 s
        clock.advance(5)
        fleet.advance(clock())
        load["rps"] = 60.0
        a.tick()
    assert fleet.lite_fraction == 0.0  # restored once ready and the full cost fits
    steps = [r.step for r in audit.rows() if r.phase == "after"]
    assert steps[:2] == ["degrade-first", "reactive"] and "restore-full" in steps


def test_a_saturated_fleet_is_sized_for_its_demand_not_its_capped_utilisation():
    """At twice capacity utilisation reads ~1 either way; the backlog's growth shows the rest,
    so one decision orders the whole surge's worth instead of one replica per cold start."""
    r = ReactiveScaler(AutoscalerConfig(high=0.7))
    capped = Signals(1.0, queue_s=0.5, load_rps=50.0)
    assert r.raw(2, capped) == 3
    assert r.raw(2, Signals(1.0, queue_s=0.5, load_rps=50.0, demand_rps=100.0)) == 6
    # a draining backlog (demand below served) never inflates the recommendation
    assert r.raw(5, Signals(0.16, load_rps=20.0, demand_rps=20.0)) == 2


def test_backlog_growth_is_the_slope_of_pending_requests_summed_over_replicas():
    import pandas as pd

    from remediation.store_signals import backlog_growth_rps

    df = pd.DataFrame({"ts": [0.0, 1.0, 2.0, 0.0, 2.0, 1.5],
                       "replica": ["r0", "r0", "r0", "r1", "r1", "r2"],
                       "value": [0.0, 25.0, 50.0, 10.0, 60.0, 7.0]})
    assert backlog_growth_rps(df) == 25.0 + 25.0  # r2's single sample adds nothing
    assert backlog_growth_rps(df.iloc[:0]) is None


def test_predictive_horizon_reaches_a_full_lead_past_now_even_late_in_a_bucket():
    """forecast(1) is the bucket still filling: the horizon counts it, or a rise one lead away
    is missed when ``now`` sits late in its bucket (and a scale-in lets go of needed capacity)."""
    cfg = AutoscalerConfig(predictive=True, season_s=40, bucket_s=4, replica_capacity_rps=12,
                           high=1.0)
    day = [10.0] * 6 + [50.0] * 4  # buckets 0-5 quiet, 6-9 busy
    p = PredictiveScaler(cfg)
    p.seed(day + day)
    for t in (400.5, 404.5, 408.5, 412.5, 415.9):  # buckets 0, 1, 2 closed; now late in 3
        p.observe(t, 1, Signals(0.5, load_rps=10.0))
    # now + lead = 424.1 falls in bucket 6, the first busy one: 50 / 12 -> five replicas by then
    assert p.recommend(8.2) == 5
    assert p.recommend(4.0) == 1  # 419.9: still bucket 4, quiet


@pytest.mark.parametrize("keep_leads, expected", [(2.0, 5), (1.0, 2)])
def test_no_scale_in_that_the_forecast_undoes_within_two_leads(clock, audit, keep_leads,
                                                               expected):
    """Quiet now, busy 1.5 leads from now: the reactive side and the one-lead forecast would
    both give back three replicas that could not be back (a cold start) when the rise comes."""
    t0 = 1_800_000_000.0  # a multiple of the 40 s season
    cfg = AutoscalerConfig(predictive=True, season_s=40, bucket_s=4, replica_capacity_rps=10,
                           sync_period_s=2, scale_down_stabilization_s=0, keep_leads=keep_leads)
    fleet = SimulatedFleet(replicas_=5)
    a = Autoscaler("synth", cfg, Applier(fleet, Guards(GuardConfig(cooldown_s=0), clock=clock),
                                         audit, clock=clock),
                   lambda now: Signals(0.1, load_rps=10.0), clock=clock, cold_start_s=10.0)
    assert a.predictive is not None
    day = [10.0] * 7 + [60.0] * 3  # the rise comes at 28 s
    a.predictive.seed(day + day)
    for t in (0.5, 4.5):  # buckets 0 and 1 seen, quiet as forecast
        a.predictive.observe(t0 + t, 5, Signals(0.1, load_rps=10.0))
    clock.t = t0 + 8.5  # lead 12 s reaches 20.5 s (quiet); two leads reach 32.5 s (busy)
    a.tick()
    assert fleet.replicas_ == expected
