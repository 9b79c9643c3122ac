"""The chaos suite's table: time to detect, time to recover, SLO-violation seconds, verdict,
remediation on against off, in the same run on the same lab.

Starts the engine lab once (:func:`chaos.engine.lab_engine`: two real Triton replicas, the
router with round robin, open-loop traffic, traces, detection and remediation), then runs each
experiment twice on it: remediation OFF (detection still alerts, no runbook runs: the fault's
raw cost) and ON. Before each run the engine is reset (weights back, no alert firing). Runbook
experiments (``requires:``) are watched for at most ``--off-watch`` seconds when off (the same
fault with nobody fixing it for that long); when on, until every expectation is met.

Fault experiments measure their SLI straight on the replica they break, so remediation cannot
change their numbers: their two rows show that detection sees the fault (or not) either way.
Runbook experiments measure through the router, where remediation shows.

    python benchmarks/chaos_suite.py --quick
    python benchmarks/chaos_suite.py --experiments rb_replica_p99_drift model_latency
    python benchmarks/chaos_suite.py --engine my.module:engine   # func(None, db_path) -> CM
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos.activity import resolve  # noqa: E402
from chaos.engine import DEFAULT_ENGINE  # noqa: E402
from chaos.experiment import Experiment, load_experiment  # noqa: E402
from chaos.journal import Journal  # noqa: E402
from chaos.report import format_table  # noqa: E402
from chaos.runner import Runner  # noqa: E402

EXPERIMENTS = ROOT / "chaos" / "experiments"
QUICK = ("model_latency", "model_errors", "hang_replica", "gpu_xid", "rb_replica_p99_drift",
         "rb_hung_replica")


def _quiet(msg: str) -> None:
    pass


def _selected(args: argparse.Namespace) -> list[Experiment]:
    names = args.experiments or (QUICK if args.quick else
                                 sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")))
    exps = [load_experiment(EXPERIMENTS / f"{n}.yaml") for n in names]
    return [e for e in exps if args.long or not e.long]


def _off(exp: Experiment, watch_s: float) -> Experiment:
    """The experiment with nobody remediating: same fault, a bounded watch."""
    e = exp.model_copy(deep=True)
    e.source = exp.source
    if e.requires:
        e.watch.duration_s = min(e.watch.duration_s, watch_s)
        e.watch.stop_when_met = False
    return e


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--experiments", nargs="*", help="experiment names (file stems)")
    parser.add_argument("--long", action="store_true", help="include long experiments")
    parser.add_argument("--engine", default=DEFAULT_ENGINE,
                        help="module:func(lab, db_path) starting the engine (default: %(default)s)")
    parser.add_argument("--off-watch", type=float, default=20.0,
                        help="seconds a runbook experiment's fault stays in with remediation off")
    parser.add_argument("--journal-dir", default=None)
    args = parser.parse_args()
    exps = _selected(args)
    home = Path(tempfile.mkdtemp(prefix="chaos-bench-"))
    jdir = Path(args.journal_dir) if args.journal_dir else home / "journals"
    rows: list[tuple[str, Journal]] = []
    t_start = time.monotonic()
    with resolve(args.engine, "--engine")(None, home / "lab" / "warden.db") as engine:
        t0 = time.monotonic()
        engine.ready()
        print(f"engine lab ready in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        for exp in exps:
            for mode in ("off", "on"):
                runner = Runner(engine.target, journal_dir=jdir / mode, progress=_quiet,
                                store=engine.store, capabilities=engine.capabilities,
                                detectable=engine.detectable)
                if not runner.skip_reasons(exp):
                    engine.reset()
                print(f"remediation {mode}: {exp.title}", file=sys.stderr, flush=True)
                with engine.remediation(mode == "on"):
                    j = runner.run(_off(exp, args.off_watch) if mode == "off" else exp)
                rows.append((f"remediation {mode}", j))
                if j.verdict not in ("passed", "skipped"):
                    print(f"  {j.verdict}: {'; '.join(j.reasons)[:300]}", file=sys.stderr)
        notes = list(engine.notes)
    print(format_table([j for _, j in rows], extra=[r for r, _ in rows]))
    for note in notes:
        print(f"engine: {note}")
    print(f"\n{len(rows)} runs in {time.monotonic() - t_start:.0f} s (engine lab start "
          f"included); journals in {jdir}")
    print(f"Runbook experiments with remediation off keep their fault in for {args.off_watch:g} s "
          "and fail by design (no action runs): the baseline their 'on' row improves on. "
          "Skipped rows name the alert no detection rule raises yet.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
