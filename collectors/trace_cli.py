"""``warden trace show|slowest`` and ``warden metrics query``: read the store from a terminal.

Why: during an incident the first questions are "where did this slow request spend its time?"
and "what did this series do in the last five minutes?"; both should be one command away, on the
same store the engine writes (opened read-only, so it is safe beside a running engine).

Exit codes: 0 found and printed; 1 nothing to show (unknown trace id, no such series, no store);
2 bad arguments (argparse's convention, e.g. ``--since 5x``).
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["parse_labels", "parse_since", "register"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_since(text: str) -> float:
    """``30s``, ``5m``, ``2h``, ``1d`` -> seconds; anything else is an argparse error (exit 2)."""
    m = _SINCE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a positive number and a unit s, m, h or d "
            "(e.g. 30s, 5m, 2h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_labels(text: str) -> dict[str, str]:
    """``model=synth,replica=r0`` -> a dict; a part without ``=`` or with an empty key fails."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"invalid label matcher {part!r}: use key=value")
        out[key.strip()] = value.strip()
    return out


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a positive integer")
    return n


def register(subparsers: Any) -> None:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, default=None,
                    help="SQLite store (default: the configured home's warden.db)")

    trace = subparsers.add_parser("trace", help="request chains as waterfalls, client to GPU")
    tsub = trace.add_subparsers(dest="trace_command", required=True)
    show = tsub.add_parser("show", parents=[db], help="the waterfall of one trace id")
    show.add_argument("trace_id")
    show.set_defaults(func=_show)
    slow = tsub.add_parser("slowest", parents=[db], help="waterfalls of the slowest chains")
    slow.add_argument("--model", default=None)
    slow.add_argument("--replica", default=None)
    slow.add_argument("--since", type=parse_since, default=parse_since("15m"),
                      help="look back this far (30s, 5m, 2h, 1d; default 15m)")
    slow.add_argument("--limit", type=_positive_int, default=3)
    slow.set_defaults(func=_slowest)

    metrics = subparsers.add_parser("metrics", help="read stored series")
    msub = metrics.add_subparsers(dest="metrics_command", required=True)
    query = msub.add_parser("query", parents=[db], help="one series as a table, with stats")
    query.add_argument("series")
    query.add_argument("--since", type=parse_since, default=parse_since("5m"),
                       help="look back this far (30s, 5m, 2h, 1d; default 5m)")
    query.add_argument("--labels", type=parse_labels, default={},
                       help="only series whose labels include these, e.g. model=synth,replica=r0")
    query.add_argument("--max-rows", type=_positive_int, default=50,
                       help="rows of the table printed (the latest; stats use all)")
    query.set_defaults(func=_metrics_query)


def _open(args: argparse.Namespace) -> Any:
    """The store, read-only; ``None`` (after a message on stderr) when it cannot be opened."""
    from warden.config import ConfigError, load_config
    from warden.store import Store, StoreError

    path = args.db
    if path is None:
        try:
            path = load_config().db_path
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None
    try:
        return Store(path, readonly=True)
    except (StoreError, OSError) as exc:
        print(f"error: cannot open store {path}: {exc}", file=sys.stderr)
        return None


def _spans(store: Any, trace_id: str) -> list[Any]:
    """The raw spans kept for a trace (slow, failed and sampled chains), as records."""
    from warden.records import Span

    df = store.spans(trace_id)
    return [
        Span(trace_id=r["trace_id"], span_id=r["span_id"], parent_span_id=r["parent_span_id"],
             name=r["name"], service=r["service"], start_ns=int(r["start_ns"]),
             end_ns=int(r["end_ns"]), attributes=r["attributes"],
             events=tuple((str(n), int(t)) for n, t in r["events"]),
             status_error=bool(r["status_error"]))
        for r in df.to_dict("records")
    ]


def _store_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A store that is not Warden's (or is mid-migration) is a message and exit 1, not a trace."""

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except sqlite3.Error as exc:
            print(f"error: reading the store failed: {exc}", file=sys.stderr)
            return 1

    return wrapper


@_store_errors
def _show(args: argparse.Namespace) -> int:
    from collectors.waterfall import render_chain

    store = _open(args)
    if store is None:
        return 1
    with store:
        chain = store.read_chain(args.trace_id)
        spans = _spans(store, args.trace_id)
    if chain is None:
        print(f"no chain with trace id {args.trace_id!r} in {store.path} (chains are written when "
              "a trace settles; only traced requests have one)", file=sys.stderr)
        return 1
    print("\n".join(render_chain(chain, spans=spans)))
    return 0


@_store_errors
def _slowest(args: argparse.Namespace) -> int:
    from collectors.waterfall import render_chain

    store = _open(args)
    if store is None:
        return 1
    with store:
        df = store.slowest_chains(args.model, start=time.time() - args.since, limit=args.limit,
                                  replica=args.replica)
        chains = [(store.read_chain(tid), _spans(store, tid)) for tid in df["trace_id"]]
    scope = " ".join(f"{k}={v}" for k, v in (("model", args.model), ("replica", args.replica)) if v)
    if not chains:
        print(f"no chains{' for ' + scope if scope else ''} in the last {args.since:g} s",
              file=sys.stderr)
        return 1
    blocks = ["\n".join(render_chain(c, spans=sp)) for c, sp in chains if c is not None]
    print(f"{len(blocks)} slowest chain(s){' for ' + scope if scope else ''} "
          f"in the last {args.since:g} s\n")
    print("\n\n".join(blocks))
    return 0


def _fmt_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@_store_errors
def _metrics_query(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return 1
    with store:
        known = store.list_series()
        if args.series not in set(known["name"]):
            names = sorted(set(known["name"]))
            close = [n for n in names if args.series in n or n in args.series][:8]
            print(f"no series named {args.series!r}"
                  + (f"; similar: {', '.join(close)}" if close else f" ({len(names)} known)"),
                  file=sys.stderr)
            return 1
        df = store.series(args.series, args.labels or None, start=time.time() - args.since)
    if df.empty:
        want = ",".join(f"{k}={v}" for k, v in args.labels.items())
        print(f"no samples of {args.series}{'{' + want + '}' if want else ''} in the last "
              f"{args.since:g} s", file=sys.stderr)
        return 1
    label_cols = [c for c in df.columns if c not in ("ts", "value", "series_id")]

    def label_text(row: Any) -> str:
        return ",".join(f"{k}={row[k]}" for k in label_cols if row[k] != "") or "-"

    df = df.assign(labels=[label_text(r) for _, r in df.iterrows()])
    width = max(6, *(len(x) for x in df["labels"]))
    shown = df.tail(args.max_rows)
    print(f"{args.series}: {len(df)} samples in {df['labels'].nunique()} series over the last "
          f"{args.since:g} s" + (f" (latest {len(shown)} shown)" if len(shown) < len(df) else ""))
    print(f"{'ts (UTC)':<23}  {'labels':<{width}}  {'value':>14}")
    for ts, lab, value in zip(shown["ts"], shown["labels"], shown["value"], strict=True):
        print(f"{_fmt_ts(ts):<23}  {lab:<{width}}  {value:>14.6g}")
    print()
    print(f"{'labels':<{width}}  {'count':>6} {'min':>12} {'mean':>12} {'p50':>12} {'p95':>12} "
          f"{'max':>12} {'last':>12}")
    for lab, g in df.groupby("labels", sort=True):
        v = g["value"].astype(float)
        stats = [v.min(), v.mean(), v.quantile(0.5), v.quantile(0.95), v.max(), v.iloc[-1]]
        print(f"{lab:<{width}}  {len(v):>6} " + " ".join(
            f"{x:>12.6g}" if math.isfinite(x) else f"{'-':>12}" for x in stats))
    return 0
