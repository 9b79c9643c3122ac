"""Remediation benchmarks: a table per scenario, against remediation off and an HPA-shaped baseline.

Scenarios:
  reroute  (real lab: 3 Triton replicas, router process, real requests) one replica slowed 5x;
           Warden's drift runbook vs remediation off, same lab, one after the other.
  surge    (simulated fleet, see remediation/simulated.py) traffic to 2x capacity for 3 min;
           off / HPA defaults (15 s sync, 300 s down-stabilisation) / Warden reactive.
  diurnal  (simulated fleet) three compressed days (10 min each), scored on the third;
           off / HPA defaults / Warden reactive / Warden reactive + predictive (Holt-Winters).
  flapping (DryRun fleet, real guards and audit) an alert that fires anew every 5 s for 2 min.
  lab-surge (real lab: 2 Triton replicas, batching off, real collector -> store -> autoscaler ->
           LocalFleet) 20 -> 100 req/s (2x capacity); off / HPA-shaped / Warden reactive.
  lab-diurnal (real lab, 4 s simulated weight load per cold start) two compressed days of 40 s,
           9 -> 51 req/s, the second day scored; off / HPA-shaped / Warden reactive / reactive + predictive, the
           forecast seeded from the store's record of the reactive run (same traffic, same seed).

Columns: time to detect (fault -> first alert or scale decision), time to mitigate (fault -> first
action applied), time to restore (fault -> SLO held again for 3 s), SLO-violation seconds,
actions taken. Usage: ``python benchmarks/remediation_bench.py [--quick] [--skip-lab]
[--only lab-surge lab-diurnal]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from remediation.applier import Applier  # noqa: E402
from remediation.audit import AuditLog  # noqa: E402
from remediation.autoscaler import Autoscaler, AutoscalerConfig, Signals, hpa_defaults  # noqa
from remediation.guards import GuardConfig, Guards  # noqa: E402
from remediation.simulated import SimulatedFleet, diurnal  # noqa: E402


def table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"\n### {title}\n", line(headers), sep, *map(line, rows)])


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


# -- simulated autoscaling ------------------------------------------------------------------------

def simulate(policy: str, load_fn, duration_s: int, *, slo_s: float, score_from: float,
             replicas: int, season_s: float = 600.0, event_at: float = 0.0) -> list[str]:
    t = [0.0]
    clock = lambda: t[0]  # noqa: E731
    fleet = SimulatedFleet(replicas_=replicas, capacity_rps=50, cold_start_s=40)
    load = {"rps": 0.0}
    scaler = None
    if policy != "off":
        cfg = {"hpa": hpa_defaults(),
               "reactive": AutoscalerConfig(sync_period_s=5, scale_down_stabilization_s=120),
               "predictive": AutoscalerConfig(sync_period_s=5, scale_down_stabilization_s=120,
                                              predictive=True, season_s=season_s, bucket_s=10,
                                              replica_capacity_rps=50)}[policy]
        db = Path(tempfile.mkdtemp()) / "a.db"
        guards = Guards(GuardConfig(cooldown_s=0, max_actions_per_hour=1000, max_replicas=20),
                        clock=clock)
        scaler = Autoscaler("synth", cfg, Applier(fleet, guards, AuditLog.open(db, clock=clock),
                                                  clock=clock),
                            lambda now: Signals(fleet.utilization(load["rps"]),
                                                load_rps=load["rps"]), clock=clock)
    violation, detect, mitigate, restore, ok_run = 0.0, None, None, None, 0
    replica_s, last_n, reversals, last_dir = 0.0, replicas, 0, 0
    calls_before = 0
    for step in range(duration_s):
        t[0] = float(step)
        fleet.advance(t[0])
        load["rps"] = load_fn(t[0])
        if t[0] == score_from:
            calls_before = fleet.scale_calls
        if scaler is not None:
            scaler.tick()
        if fleet.replicas_ != last_n:
            d = 1 if fleet.replicas_ > last_n else -1
            reversals += int(last_dir != 0 and d != last_dir)
            last_dir, last_n = d, fleet.replicas_
        if t[0] < score_from:
            continue
        replica_s += fleet.replicas_
        bad = fleet.p99_s(load["rps"]) > slo_s
        violation += bad
        if scaler is not None and t[0] >= event_at:
            if detect is None and scaler.decisions and scaler.decisions[-1][2] > \
                    scaler.decisions[-1][1]:
                detect = t[0] - event_at
            if mitigate is None and fleet.scale_calls > calls_before:
                mitigate = t[0] - event_at
        if t[0] >= event_at and restore is None and violation > 0:
            ok_run = 0 if bad else ok_run + 1
            if ok_run >= 3:
                restore = t[0] - 2 - event_at
    return [policy, fmt(detect), fmt(mitigate), fmt(restore), f"{violation:.0f}",
            str(fleet.scale_calls - calls_before), str(reversals), f"{replica_s / 60:.0f}",
            str(fleet.replicas_)]


def surge(quick: bool) -> str:
    def load(t: float) -> float:
        return 200.0 if 60 <= t < 240 else 100.0  # 2 replicas x 50 rps = 100: surge to 2x
    dur = 600 if not quick else 480
    rows = [simulate(p, load, dur, slo_s=0.4, score_from=0, replicas=3, event_at=60)
            for p in ("off", "hpa", "reactive")]
    return table("surge to 2x capacity for 3 min (simulated fleet, 40 s cold start, SLO P99 0.4 s)",
                 ["policy", "detect s", "mitigate s", "restore s", "SLO-violation s",
                  "actions", "reversals", "replica-min", "replicas at end"], rows)


def diurnal_day(quick: bool) -> str:
    period = 600.0
    load = lambda t: diurnal(t, base=40, peak=400, period_s=period)  # noqa: E731
    rows = [simulate(p, load, int(3 * period), slo_s=0.4, score_from=2 * period, replicas=2,
                     season_s=period) for p in ("off", "hpa", "reactive", "predictive")]
    for r in rows:
        r[1] = r[2] = r[3] = "-"
    return table("diurnal, 3 compressed days of 10 min, third day scored (simulated fleet, 40 s "
                 "cold start)", ["policy", "detect s", "mitigate s", "restore s",
                                 "SLO-violation s", "actions", "reversals", "replica-min",
                                 "replicas at end"], rows)


# -- flapping alert (DryRun fleet, real executor, guards, audit) ------------------------------------

def flapping() -> str:
    from remediation.actions import builtin_registry
    from remediation.actuators.dryrun import DryRun
    from remediation.executor import RunbookExecutor
    from remediation.runbook import load_runbooks
    from remediation.sli import StaticSli
    from warden.records import Alert, AlertStatus, freeze_labels

    rows = []
    for label, cfg in (("guards on", GuardConfig(cooldown_s=60, max_actions_per_hour=10,
                                                  max_replicas=6)),
                       ("guards off*", GuardConfig(cooldown_s=0, max_actions_per_hour=10_000,
                                                   max_replicas=1000))):
        t = [0.0]
        clock = lambda: t[0]  # noqa: E731
        fleet = DryRun.simple({"synth": 2}, cold_start_s=1.0)
        audit = AuditLog.open(Path(tempfile.mkdtemp()) / "f.db", clock=clock)
        toggle = {"n": 0}
        outcomes: list[str] = []

        def sli(name, labels, now):
            toggle["n"] += 1
            return 0.9 if toggle["n"] % 2 else 0.1  # over SLO at trigger, fine at verification

        ex = RunbookExecutor(load_runbooks(builtin_registry()),
                             Applier(fleet, Guards(cfg, clock=clock), audit, clock=clock),
                             StaticSli(sli), clock=clock, sleep=lambda s: None)
        while t[0] < 120:
            a = Alert(freeze_labels({"alertname": "ModelSaturated", "model": "synth",
                                     "severity": "critical"}), (), t[0], None,
                      AlertStatus.FIRING)
            outcomes += [r.outcome for r in ex.handle(a)]
            t[0] += 5
        applied = [r for r in audit.rows() if r.phase == "after" and r.status == "applied"]
        refused = [r for r in audit.rows() if r.phase == "refused"]
        rows.append([label, str(len(outcomes)), str(len(applied)), str(len(refused)),
                     str(outcomes.count("precondition_unmet")), str(fleet.replicas("synth"))])
    return table("alert flapping every 5 s for 2 min (saturation runbook, DryRun fleet; *guards "
                 "off = no cooldown/cap, for contrast)",
                 ["guards", "alerts", "actions applied", "refused by guards",
                  "precondition unmet", "replicas at end"], rows)


# -- real lab: slowed replica -----------------------------------------------------------------------

def reroute(quick: bool) -> str:
    from remediation.closed_loop import run_reroute_scenario
    from warden.config import WardenConfig
    from warden.lab import Lab

    home = Path(tempfile.mkdtemp())
    cfg = WardenConfig(home=home, lab={"replicas": 3, "router_port": 0,
                                       "router_policy": "round_robin", "tracing": False},
                       fleet={"models": ["synth"], "synth_cost": {"per_batch_ms": 40.0}})
    rows = []
    with Lab(cfg, with_traffic=False) as lab:
        assert lab.admin is not None
        for remediation in (False, True):
            res = run_reroute_scenario(lab.fleet, lab.admin, lab.router_url,
                                       home / f"r{int(remediation)}.db", remediation=remediation,
                                       rate=24, fault_s=20 if quick else 30, warmup_s=4)
            tl = res.timeline
            actions = sum(1 for r in res.audit if r.phase == "after" and r.status == "applied")
            rows.append(["warden" if remediation else "off", fmt(tl.detected_s),
                         fmt(tl.mitigated_s), fmt(tl.restored_s), f"{tl.violation_s:.1f}",
                         str(actions), f"{res.slo_s * 1e3:.0f}", f"{tl.p99_before * 1e3:.0f}",
                         f"{tl.p99_fault * 1e3:.0f}", f"{tl.p99_after * 1e3:.0f}", res.outcome])
            time.sleep(2)
    return table("one replica slowed 5x under load (real lab: 3 Triton replicas, router process, "
                 "24 req/s, round robin)",
                 ["remediation", "detect s", "mitigate s", "restore s", "SLO-violation s",
                  "actions", "SLO ms", "P99 before", "P99 fault", "P99 end", "outcome"], rows)


def lab_surge(quick: bool) -> str:
    from remediation.lab_scaling import reset_fleet, run_surge_scenario
    from warden.config import WardenConfig
    from warden.lab import Lab

    home = Path(tempfile.mkdtemp())
    cfg = WardenConfig(home=home, lab={"replicas": 2, "router_port": 0,
                                       "router_policy": "least_outstanding", "tracing": False},
                       fleet={"models": ["synth"], "synth_cost": {"per_batch_ms": 40.0},
                              "batching": {"enabled": False}, "weights_load_s": 4.0})
    policies = [("off", None),
                ("hpa", hpa_defaults(queue_high_s=None)),
                ("warden", AutoscalerConfig(sync_period_s=2, scale_down_stabilization_s=20,
                                            queue_high_s=0.05)),
                ("warden+degrade", AutoscalerConfig(sync_period_s=2,
                                                    scale_down_stabilization_s=20,
                                                    queue_high_s=0.05, degrade_first=True,
                                                    slo_budget_s=3.0, degrade_fraction=0.5))]
    rows = []
    surge_len, tail = (30.0, 30.0) if quick else (45.0, 45.0)
    with Lab(cfg, with_traffic=False, with_telemetry=False) as lab:
        for name, c in policies:
            reset_fleet(lab, 2)
            time.sleep(10)  # let the previous run's backlog drain
            r = run_surge_scenario(lab, home / f"s-{name}.db", name, c, base_rps=20,
                                   surge_rps=100, surge_at=15, surge_len=surge_len,
                                   duration_s=15 + surge_len + tail, slo_s=0.5)
            rows.append([name, fmt(r.detect_s), fmt(r.mitigate_s), fmt(r.restore_s),
                         f"{r.violation_s:.0f}", str(r.actions), str(r.reversals),
                         str(r.max_replicas), str(r.end_replicas),
                         f"{r.errors_before_surge}/{r.errors}/{r.requests}"])
    return table(f"surge to 2x capacity on the real lab (2 replicas x 25 req/s, batching off, "
                 f"4 s weight load per cold start; 20 -> 100 req/s for {surge_len:.0f} s; SLO "
                 f"P99 0.5 s)",
                 ["policy", "detect s", "mitigate s", "restore s", "SLO-violation s", "actions",
                  "reversals", "max replicas", "end replicas",
                  "errors before surge/errors/requests"], rows)


def lab_diurnal(quick: bool) -> str:
    from remediation.lab_scaling import load_history, reset_fleet, run_diurnal_scenario
    from warden.config import WardenConfig
    from warden.lab import Lab
    from warden.store import Store

    period, bucket = 40.0, 4.0
    home = Path(tempfile.mkdtemp())
    cfg = WardenConfig(home=home, lab={"replicas": 2, "router_port": 0,
                                       "router_policy": "least_outstanding", "tracing": False},
                       fleet={"models": ["synth"], "synth_cost": {"per_batch_ms": 40.0},
                              "batching": {"enabled": False}, "weights_load_s": 4.0})
    common = dict(sync_period_s=2, scale_down_stabilization_s=10, queue_high_s=0.05,
                  season_s=period, bucket_s=bucket)
    policies = [("reactive", AutoscalerConfig(**common)),  # first: its record seeds the forecast
                ("off", None),
                ("hpa", hpa_defaults(queue_high_s=None)),
                ("predictive", AutoscalerConfig(predictive=True, **common))]
    rows, history = [], None
    with Lab(cfg, with_traffic=False, with_telemetry=False) as lab:
        for name, c in policies:
            reset_fleet(lab, 2)
            time.sleep(3)
            r = run_diurnal_scenario(lab, home / f"d-{name}.db", name, c, mean_rps=30,
                                     amplitude=0.7, period_s=period, duration_s=2 * period,
                                     slo_s=0.5, seed=7, history=history, score_from_s=period)
            if name == "reactive":
                store = Store(home / "d-reactive.db", readonly=True)
                history = load_history(store, "synth", r.started, r.started + 2 * period,
                                       bucket)
                store.close()
            rows.append([name, "-", fmt(r.mitigate_s), "-", f"{r.violation_s:.0f}",
                         str(r.actions), str(r.reversals), f"{r.replica_s / 60:.1f}",
                         str(r.end_replicas), f"{r.errors}/{r.requests}"])
    return table("diurnal on the real lab: 2 compressed days of 40 s (the second scored), 9 -> 51 "
                 "req/s, 25 req/s per replica, cold start = Triton start + 4 s weight load; "
                 "SLO P99 0.5 s", 
                 ["policy", "detect s", "first action s", "restore s", "SLO-violation s",
                  "actions", "reversals", "replica-min", "replicas at end", "errors/requests"],
                 rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs")
    p.add_argument("--skip-lab", action="store_true", help="only the simulated/dry-run tables")
    p.add_argument("--only", nargs="*", choices=sorted(SCENARIOS),
                   help="run these scenarios only")
    args = p.parse_args()
    names = args.only or [n for n in SCENARIOS if not (args.skip_lab and n in LAB_SCENARIOS)]
    for name in names:
        fn = SCENARIOS[name]
        print(fn() if name == "flapping" else fn(args.quick), flush=True)
    return 0


SCENARIOS = {"surge": surge, "diurnal": diurnal_day, "flapping": flapping, "reroute": reroute,
             "lab-surge": lab_surge, "lab-diurnal": lab_diurnal}
LAB_SCENARIOS = {"reroute", "lab-surge", "lab-diurnal"}


if __name__ == "__main__":
    sys.exit(main())
