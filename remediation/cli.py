"""``warden runbooks validate|list|dry-run`` and ``warden audit``.

The lead wires :func:`register` into ``warden.cli``. ``dry-run`` runs the real executor, guards
and audit (in memory) against a :class:`~remediation.actuators.dryrun.DryRun` fleet, so it prints
exactly the plan a live run would make, refusals included; SLIs come from ``--sli name=value``
(none given: preconditions see no data and say so).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DB_PATH", "ENV_DB", "register"]

ENV_DB = "WARDEN_DB"
DEFAULT_DB_PATH = ".warden/warden.db"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _load(paths: Sequence[str], builtin: bool = True) -> Any:
    from remediation.actions import builtin_registry
    from remediation.runbook import load_runbooks

    return load_runbooks(builtin_registry(), [Path(p) for p in paths], builtin=builtin)


def _validate(args: argparse.Namespace) -> int:
    from remediation.errors import RunbookError

    try:
        rs = _load(args.paths, builtin=not args.no_builtin)
    except RunbookError as exc:
        print(f"invalid: {exc}")
        return 1
    for rb in rs.runbooks:
        print(f"ok  {rb.name}  ({rb.source}, {len(rb.steps)} step(s))")
    return 0


def _list(args: argparse.Namespace) -> int:
    from remediation.errors import RunbookError

    try:
        rs = _load(args.paths)
    except RunbookError as exc:
        print(f"invalid: {exc}")
        return 1
    rows = []
    for rb in rs.runbooks:
        trig = rb.spec.trigger.alertname + "".join(f" {m}" for m in rb.spec.trigger.matchers)
        steps = " -> ".join(f"{s.spec.action}" for s in rb.steps)
        if rb.on_verified:
            steps += " | then " + " -> ".join(s.spec.action for s in rb.on_verified)
        v = rb.spec.verify
        verify = f"{v.sli} {v.op} {v.value} in {v.deadline_s:g}s" if v else "-"
        rows.append((rb.name, trig, steps, verify, rb.source))
    print(_table(("runbook", "trigger", "steps", "verify", "source"), rows))
    return 0


def _parse_alert(path: Path) -> list[Any]:
    """One alert object (labels, annotations, startsAt) or an Alertmanager v4 webhook body."""
    from warden.alerting.payload import (
        PayloadError,
        WebhookAlert,
        alert_from_webhook,
        parse_webhook_payload,
    )

    text = path.read_text()
    data = json.loads(text)
    if isinstance(data, dict) and "alerts" in data:
        return [alert_from_webhook(a) for a in parse_webhook_payload(text).alerts]
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if not isinstance(item, dict) or "labels" not in item:
            raise PayloadError("an alert needs at least 'labels'")
        item = {"status": "firing", "startsAt": "2026-01-01T00:00:00Z", "annotations": {},
                **item}
        try:
            out.append(alert_from_webhook(WebhookAlert.model_validate(item)))
        except Exception as exc:
            raise PayloadError(f"not an alert: {exc}") from exc
    return out


def _dry_run(args: argparse.Namespace) -> int:
    from remediation.actuators.dryrun import DryRun
    from remediation.applier import Applier
    from remediation.audit import AuditLog
    from remediation.errors import RunbookError
    from remediation.executor import RunbookExecutor
    from remediation.guards import GuardConfig, Guards
    from remediation.sli import StaticSli
    from warden.alerting import AlertingError

    try:
        rs = _load(args.runbooks)
        alerts = _parse_alert(Path(args.alert))
    except (RunbookError, AlertingError, OSError, ValueError) as exc:
        print(f"warden: {exc}")
        return 1
    replicas: dict[str, int] = {}
    for spec in args.replicas:
        model, _, n = spec.partition("=")
        replicas[model] = int(n)
    for a in alerts:
        model = dict(a.labels).get("model")
        if model and model not in replicas:
            replicas[model] = 2
    slis: dict[str, float] = {}
    for spec in args.sli:
        name, _, value = spec.partition("=")
        slis[name] = float(value)
    t = [time.time()]
    clock = lambda: t[0]  # noqa: E731

    def sleep(s: float) -> None:
        t[0] += s

    fleet = DryRun.simple(replicas or {"synth": 2}, cold_start_s=args.cold_start)
    audit = AuditLog(sqlite3.connect(":memory:", check_same_thread=False), clock=clock)
    applier = Applier(fleet, Guards(GuardConfig(), clock=clock), audit, clock=clock)
    pages: list[Any] = []
    ex = RunbookExecutor(rs, applier, StaticSli(lambda name, labels, now: slis.get(name)),
                         clock=clock, sleep=sleep, page=pages.append)
    reports = [r for a in alerts for r in ex.handle(a)]
    if args.json:
        print(json.dumps({"reports": [r.to_json() for r in reports], "calls": fleet.calls,
                          "pages": [dict(p.labels) for p in pages]}, indent=2, default=str))
        return 0
    if not reports:
        print("no runbook matches this alert")
        return 0
    for r in reports:
        print(f"runbook {r.runbook}: {r.outcome}")
        for p in r.preconditions:
            value = "no data" if p["value"] is None else f"{p['value']:g}"
            print(f"  precondition {p['sli']} {p['op']} {p['threshold']:g}: {value} "
                  f"-> {'holds' if p['holds'] else 'not met'}")
        for s in [*r.steps, *r.rolled_back]:
            print(f"  {s.step}: {s.status} {s.detail}")
        if r.verify:
            print(f"  verify {r.verify['sli']} {r.verify['op']} {r.verify['threshold']:g}: "
                  f"{'ok' if r.verify['ok'] else 'not within deadline'}")
        if r.paged:
            print("  would page on-call")
    print("actuator calls (dry run): " + (", ".join(
        f"{m}({', '.join(f'{k}={v}' for k, v in a.items())})" for m, a in fleet.calls) or "none"))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog
    from warden.db import open_db

    path = Path(args.db or os.environ.get(ENV_DB) or DEFAULT_DB_PATH)
    if not path.exists():
        print(f"warden: no database at {path} (set --db or ${ENV_DB})")
        return 1
    audit = AuditLog(open_db(path, readonly=True), clock=time.time, create=False)
    try:
        rows = audit.rows(since=time.time() - args.since if args.since else None,
                          runbook=args.runbook, limit=args.limit)
    except sqlite3.OperationalError:
        print("no remediation has run yet (no action_audit table)")
        return 0
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return 0
    table = [(time.strftime("%H:%M:%S", time.localtime(r.ts)), r.runbook, r.step, r.target,
              r.phase, r.status, r.idempotency_key[:10], r.result[:60]) for r in rows]
    print(_table(("time", "runbook", "step", "target", "phase", "status", "key", "result"),
                 table) if table else "no actions audited")
    return 0


def register(subparsers: Any) -> None:
    rb = subparsers.add_parser("runbooks", help="validate, list or dry-run remediation runbooks")
    sub = rb.add_subparsers(dest="runbooks_command", metavar="ACTION", required=True)
    v = sub.add_parser("validate", help="load built-in and given runbooks; errors name file/key")
    v.add_argument("paths", nargs="*", help="runbook files or directories")
    v.add_argument("--no-builtin", action="store_true", help="validate only the given files")
    v.set_defaults(func=_validate)
    ls = sub.add_parser("list", help="list runbooks: trigger, steps, verification")
    ls.add_argument("paths", nargs="*")
    ls.set_defaults(func=_list)
    d = sub.add_parser("dry-run", help="run matching runbooks for ALERT.json against a dry run")
    d.add_argument("alert", help="an alert (labels, annotations) or an Alertmanager webhook body")
    d.add_argument("--runbooks", nargs="*", default=[], help="extra runbook files/directories")
    d.add_argument("--replicas", nargs="*", default=[], metavar="MODEL=N")
    d.add_argument("--sli", nargs="*", default=[], metavar="NAME=VALUE",
                   help="SLI values, e.g. p99_latency_seconds=0.8")
    d.add_argument("--cold-start", type=float, default=5.0, help="seconds (default 5)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_dry_run)
    a = subparsers.add_parser("audit", help="the remediation audit: every action before/after")
    a.add_argument("--db", help=f"database (default ${ENV_DB} or {DEFAULT_DB_PATH})")
    a.add_argument("--since", type=float, default=None, help="seconds back")
    a.add_argument("--runbook")
    a.add_argument("--limit", type=int, default=200)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_audit)
