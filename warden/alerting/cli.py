"""``warden alerts outbox``, ``warden alerts silence add|list|expire`` and ``warden slo``.

The lead wires :func:`register` into ``warden.cli``. Every command takes ``--db`` (default:
``$WARDEN_DB`` or ``.warden/warden.db``). Output never includes a secret: the outbox listing
shows keys, targets, states and errors, not headers or bodies.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from warden.alerting.outbox import Outbox
from warden.alerting.silences import SilenceError, SilenceStore, parse_duration
from warden.alerting.sli_chains import StoreChainsSli
from warden.alerting.slo import SloConfigError, SloEvaluator, SloSpec, load_slos
from warden.db import open_db
from warden.store import Store, StoreError

__all__ = ["DEFAULT_DB_PATH", "ENV_DB", "register"]

ENV_DB = "WARDEN_DB"
DEFAULT_DB_PATH = ".warden/warden.db"


def _db_path(args: argparse.Namespace) -> Path:
    return Path(args.db or os.environ.get(ENV_DB) or DEFAULT_DB_PATH)


def _open(args: argparse.Namespace) -> Any:
    path = _db_path(args)
    if not path.exists():
        print(f"warden: no database at {path} (set --db or ${ENV_DB})")
        return None
    return open_db(path)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ago(now: float, ts: float | None) -> str:
    if ts is None:
        return "-"
    d = now - ts
    sign = "" if d >= 0 else "in "
    d = abs(d)
    text = f"{d:.0f}s" if d < 120 else f"{d / 60:.0f}m" if d < 7200 else f"{d / 3600:.1f}h"
    return sign + text + ("" if sign else " ago")


def cmd_outbox(args: argparse.Namespace) -> int:
    conn = _open(args)
    if conn is None:
        return 1
    outbox, now = Outbox(conn), time.time()
    counts = outbox.counts()
    items = outbox.items(state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps({"counts": counts, "items": [
            {"id": i.id, "key": i.idempotency_key, "target": i.target, "group_key": i.group_key,
             "status": i.status, "state": i.state, "attempts": i.attempts,
             "created_at": i.created_at, "next_attempt_at": i.next_attempt_at,
             "last_status": i.last_status, "last_error": i.last_error,
             "delivered_at": i.delivered_at} for i in items]}, indent=2))
        return 0
    print(f"outbox: {counts['pending']} pending, {counts['delivered']} delivered, "
          f"{counts['dead']} dead")
    if items:
        print(_table(
            ["id", "state", "target", "status", "attempts", "created", "next/delivered",
             "last", "group", "idempotency key"],
            [(i.id, i.state, i.target, i.status, i.attempts, _ago(now, i.created_at),
              _ago(now, i.delivered_at if i.state == "delivered" else i.next_attempt_at),
              i.last_status or (i.last_error[:40] or "-"), i.group_key[:40], i.idempotency_key)
             for i in items]))
    return 0


def cmd_silence_add(args: argparse.Namespace) -> int:
    conn = open_db(_db_path(args))
    try:
        sil = SilenceStore(conn).add(args.matchers, now=time.time(),
                                     duration_s=parse_duration(args.duration),
                                     created_by=args.author, comment=args.comment)
    except SilenceError as exc:
        print(f"warden: {exc}")
        return 2
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(sil.ends_at))
    print(f"silence {sil.id} until {until}")
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    conn = _open(args)
    if conn is None:
        return 1
    now = time.time()
    sils = SilenceStore(conn).list(now=now, include_expired=args.all)
    print(_table(["id", "state", "matchers", "ends", "by", "comment"],
                 [(s.id, s.state(now), ",".join(map(str, s.matchers)), _ago(now, s.ends_at),
                   s.created_by or "-", s.comment or "-") for s in sils]))
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    conn = _open(args)
    if conn is None:
        return 1
    try:
        SilenceStore(conn).expire(args.id, now=time.time())
    except SilenceError as exc:
        print(f"warden: {exc}")
        return 1
    print(f"silence {args.id} expired")
    return 0


def _slo_section(raw: Any) -> Any:
    """``alerting.slos`` (what the lab evaluates), else a top-level ``slos`` list."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SloConfigError("the config's top level must be a mapping")
    alerting = raw.get("alerting")
    if isinstance(alerting, dict) and alerting.get("slos") is not None:
        return alerting["slos"]
    return raw.get("slos")


def cmd_slo(args: argparse.Namespace) -> int:
    """SLOs counted from the store's request chains (every variant of the model)."""
    try:
        raw = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
        slos = load_slos(_slo_section(raw))
    except (OSError, yaml.YAMLError, SloConfigError) as exc:
        print(f"warden: bad SLO config: {exc}")
        return 2
    if not slos:
        print("no SLOs configured (add 'slos:' under 'alerting:' in the config)")
        return 0
    path = _db_path(args)
    try:
        store = Store(path, readonly=True)
    except StoreError as exc:
        print(f"warden: {exc} (set --db or ${ENV_DB})")
        return 1
    try:
        return _print_slos(slos, SloEvaluator(slos, StoreChainsSli(store)))
    except Exception as exc:  # e.g. a database without the store's tables
        print(f"warden: cannot read request chains from {path}: {exc}")
        return 1
    finally:
        store.close()


def _print_slos(slos: Sequence[SloSpec], ev: SloEvaluator) -> int:
    now = time.time()
    rows = []
    for s in slos:
        b = ev.budget(s, now)
        tiers = ev.tiers_for(s, now)
        firing = [f"{t.tier.severity}:{t.tier.name}" for t in tiers if t.firing]
        rows.append((s.name, s.model, s.kind, f"{s.objective:.4%}",
                     f"{s.period_s / 86400:g}d", "-" if b.sli is None else f"{b.sli:.4%}",
                     f"{b.budget_remaining:.1%}", int(b.total),
                     " ".join(f"{t.long_burn:.1f}/{t.short_burn:.1f}" for t in tiers),
                     ",".join(firing) or "-"))
    print(_table(["slo", "model", "kind", "objective", "period", "sli", "budget left",
                  "events", "burn long/short (14.4x 6x 3x 1x)", "firing"], rows))
    return 0


def register(subparsers: Any) -> None:
    """Add ``alerts`` and ``slo`` to the ``warden`` command line."""
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", help=f"SQLite database (default ${ENV_DB} or {DEFAULT_DB_PATH})")

    alerts = subparsers.add_parser("alerts", help="alert notifications and silences")
    sub = alerts.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    ob = sub.add_parser("outbox", parents=[db], help="notifications: pending, delivered, dead")
    ob.add_argument("--state", choices=["pending", "delivered", "dead"])
    ob.add_argument("--limit", type=int, default=20)
    ob.add_argument("--json", action="store_true")
    ob.set_defaults(func=cmd_outbox)

    si = sub.add_parser("silence", help="mute alerts matching labels for a while")
    ssub = si.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    add = ssub.add_parser("add", parents=[db], help="add a silence")
    add.add_argument("matchers", nargs="+", help='label matchers: name=value, !=, =~, !~')
    add.add_argument("--duration", default="1h", help="e.g. 30m, 2h, 1d (default 1h)")
    add.add_argument("--comment", default="")
    add.add_argument("--author", default=os.environ.get("USER", ""))
    add.set_defaults(func=cmd_silence_add)
    ls = ssub.add_parser("list", parents=[db], help="list silences")
    ls.add_argument("--all", action="store_true", help="include expired ones")
    ls.set_defaults(func=cmd_silence_list)
    ex = ssub.add_parser("expire", parents=[db], help="expire a silence now")
    ex.add_argument("id")
    ex.set_defaults(func=cmd_silence_expire)

    slo = subparsers.add_parser("slo", parents=[db], help="SLOs, burn rates, error budget left")
    slo.add_argument("--config", help="warden.yaml with 'slos:' under 'alerting:' (or at the top)")
    slo.set_defaults(func=cmd_slo)
