"""``warden chaos run|report|revert``: the chaos suite from the command line.

``run`` starts the local lab (from ``warden.yaml``) unless ``--target`` names a fleet's target
file (``lab.json`` of a running lab, or one written by :meth:`chaos.target.Target.write`).
Exit codes: 0 every experiment passed or was skipped, 1 one failed or aborted, 2 an experiment
file is invalid (nothing was run), 130 interrupted (faults were still reverted).
Also runnable as ``python -m chaos.cli`` while the top-level CLI is being wired.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "register"]


def _run(args: argparse.Namespace) -> int:
    from chaos.errors import ChaosError, ExperimentError
    from chaos.experiment import load_experiment
    from chaos.report import format_table
    from chaos.runner import Runner
    from chaos.target import LocalTarget, Target, load_target

    try:
        experiments = [load_experiment(f) for f in args.files]
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    caps = {c for c in (args.capabilities or "").split(",") if c}
    lab: Any = None
    try:
        if args.target:
            target: Target = load_target(args.target, access_token=args.access_token)
        else:
            from warden.config import load_config
            from warden.lab import Lab

            lab = Lab(load_config(args.config), with_traffic=args.traffic)
            lab.start()
            target = LocalTarget(lab.fleet, router_url=lab.router_url,
                                 db_path=str(lab.config.db_path))
            from chaos.probes import warm_up

            warm_up(target, tuple(lab.config.fleet.models))
        store = None
        db = args.db or target.db_path
        if db and Path(db).exists():
            from warden.store import Store

            store = Store(db, readonly=True)
        runner = Runner(target, journal_dir=Path(args.journal_dir), store=store,
                        ledger_path=Path(args.ledger) if args.ledger else None,
                        capabilities=caps)
        journals = []
        for exp in experiments:
            try:
                journals.append(runner.run(exp))
            except ChaosError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if journals[-1].verdict == "interrupted":
                break
    except KeyboardInterrupt:
        return 130
    finally:
        if lab is not None:
            lab.stop()
    print(format_table(journals))
    if any(j.verdict == "interrupted" for j in journals):
        return 130
    return 1 if any(j.verdict in ("failed", "aborted") for j in journals) else 0


def _report(args: argparse.Namespace) -> int:
    from chaos.journal import Journal
    from chaos.report import format_table, format_timeline, plot_timeline

    try:
        journals = [Journal.load(p) for p in args.journals]
    except (OSError, ValueError) as exc:
        print(f"error: cannot read journal: {exc}", file=sys.stderr)
        return 2
    print(format_table(journals))
    for j in journals:
        print()
        print(format_timeline(j))
    if args.png:
        for i, j in enumerate(journals):
            out = Path(args.png)
            if len(journals) > 1:
                out = out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}")
            print(f"wrote {plot_timeline(j, out)}")
    return 0


def _revert(args: argparse.Namespace) -> int:
    from chaos.errors import TargetError
    from chaos.ledger import Ledger, revert_leftovers
    from chaos.target import load_target

    try:
        target = load_target(args.target, access_token=args.access_token)
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = revert_leftovers(Ledger(Path(args.ledger)), target)
    for label in result.reverted:
        print(f"reverted {label}")
    for label in result.failed:
        print(f"NOT reverted {label}", file=sys.stderr)
    if not result.reverted and not result.failed:
        print("nothing to revert")
    return 0 if result.ok else 1


def register(subparsers: Any) -> None:
    chaos = subparsers.add_parser("chaos", help="chaos experiments against the lab or a fleet")
    sub = chaos.add_subparsers(dest="chaos_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run experiment files and write their journals")
    run.add_argument("files", nargs="+", metavar="FILE")
    run.add_argument("--target", help="target file (lab.json or a written target); "
                                      "default: start the local lab")
    run.add_argument("--journal-dir", default="chaos-journals")
    run.add_argument("--ledger", help="fault ledger (default JOURNAL_DIR/faults.ledger)")
    run.add_argument("--db", help="Warden store to read alerts and actions from")
    run.add_argument("--capabilities", default="",
                     help="what runs with the fleet: detection,remediation")
    run.add_argument("--access-token", help="Triton access token (or $WARDEN_TRITON_ACCESS_TOKEN)")
    run.add_argument("--config", help="warden.yaml for the local lab")
    run.add_argument("--traffic", action="store_true", help="local lab: start its traffic")
    run.set_defaults(func=_run)

    rep = sub.add_parser("report", help="table and timeline of journals")
    rep.add_argument("journals", nargs="+", metavar="JOURNAL")
    rep.add_argument("--png", help="write the timeline plot here")
    rep.set_defaults(func=_report)

    rev = sub.add_parser("revert", help="revert faults a crashed run left (from its ledger)")
    rev.add_argument("--ledger", required=True)
    rev.add_argument("--target", required=True, help="target file the faults were injected on")
    rev.add_argument("--access-token")
    rev.set_defaults(func=_revert)


def main(argv: list[str] | None = None) -> int:
    import logging

    parser = argparse.ArgumentParser(prog="warden")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["chaos", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
