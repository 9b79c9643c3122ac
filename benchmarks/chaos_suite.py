"""The chaos suite's table: time to detect, time to recover, SLO-violation seconds, verdict,
remediation on against off, in the same run on the same lab.

Starts the local lab once (two real Triton replicas, the router), then runs each experiment
file with remediation off (no engine: the fault's raw cost), and, when ``--engine`` names a
factory, again with remediation on. Runbook experiments (``requires: [detection, remediation]``)
run "off" too, with a shorter watch, as the baseline their "on" row is compared with: the same
fault with nobody fixing it. Journals are kept in ``--journal-dir``.

``--engine module:func``: ``func(lab, store_path) -> context manager`` yielding a
``chaos.pytest_plugin.ChaosEngine`` (capabilities and store) while the engine runs beside the lab.

    python benchmarks/chaos_suite.py --quick
    python benchmarks/chaos_suite.py --engine warden.engine:chaos_engine   # once it lands
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos.activity import resolve  # noqa: E402
from chaos.experiment import Experiment, load_experiment  # noqa: E402
from chaos.journal import Journal  # noqa: E402
from chaos.probes import warm_up  # noqa: E402
from chaos.report import format_table  # noqa: E402
from chaos.runner import Runner  # noqa: E402
from chaos.target import LocalTarget  # noqa: E402
from warden.config import WardenConfig  # noqa: E402
from warden.lab import Lab  # noqa: E402

EXPERIMENTS = ROOT / "chaos" / "experiments"
QUICK = ("model_latency", "model_errors", "hang_replica", "gpu_xid", "rb_replica_p99_drift",
         "rb_hung_replica")
OFF_WATCH_S = 10.0


def _quiet(msg: str) -> None:
    pass


def _selected(args: argparse.Namespace) -> list[Experiment]:
    names = args.experiments or (QUICK if args.quick else
                                 sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")))
    exps = [load_experiment(EXPERIMENTS / f"{n}.yaml") for n in names]
    return [e for e in exps if args.long or not e.long]


def _off(exp: Experiment) -> Experiment:
    """The experiment with nobody remediating: same fault, a bounded watch."""
    e = exp.model_copy(deep=True)
    e.source = exp.source
    if e.requires:
        e.watch.duration_s = min(e.watch.duration_s, OFF_WATCH_S)
        e.watch.stop_when_met = False
    return e


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--experiments", nargs="*", help="experiment names (file stems)")
    parser.add_argument("--long", action="store_true", help="include long experiments")
    parser.add_argument("--engine", help="module:func starting the engine (remediation on)")
    parser.add_argument("--journal-dir", default=None)
    args = parser.parse_args()
    exps = _selected(args)
    home = Path(tempfile.mkdtemp(prefix="chaos-bench-"))
    jdir = Path(args.journal_dir) if args.journal_dir else home / "journals"
    config = WardenConfig.model_validate({"home": str(home), "lab": {"replicas": 2,
                                          "router_port": 0}, "fleet": {"models": ["synth"]}})
    rows: list[tuple[str, Journal]] = []
    t_start = time.monotonic()
    with Lab(config, with_traffic=False) as lab:
        target = LocalTarget(lab.fleet, router_url=lab.router_url, db_path=str(config.db_path))
        warm_up(target)
        off = Runner(target, journal_dir=jdir / "off", progress=_quiet,
                     capabilities={"detection", "remediation"})
        for exp in exps:
            print(f"off: {exp.title}", file=sys.stderr, flush=True)
            rows.append(("remediation off", off.run(_off(exp))))
        if args.engine:
            factory = resolve(args.engine, "--engine")
            with factory(lab, config.db_path) as engine:
                on = Runner(target, journal_dir=jdir / "on", progress=_quiet, store=engine.store,
                            capabilities=engine.capabilities)
                for exp in exps:
                    print(f"on: {exp.title}", file=sys.stderr, flush=True)
                    rows.append(("remediation on", on.run(exp)))
    with contextlib.suppress(Exception):
        rows.sort(key=lambda r: (r[1].source, r[0]))
    print(format_table([j for _, j in rows], extra=[r for r, _ in rows]))
    if not args.engine:
        print("\nremediation on: not run (no engine yet: pass --engine module:func).")
    print(f"\n{len(rows)} runs in {time.monotonic() - t_start:.0f} s; journals in {jdir}")
    print("Off-run verdicts of runbook experiments are 'failed' by design: nothing detects or "
          "remediates, which is the baseline the 'on' rows improve on.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
