"""``warden traces`` and ``warden store``: the trace-receiver process and store upkeep.

The trace receiver runs as its own process (DESIGN.md: "the trace receiver and the dashboard are
separate processes that share the store"); ``warden traces serve`` is that process. ``warden store
info`` and ``warden store prune`` are for an operator looking at a store file.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from typing import Any

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    traces = subparsers.add_parser("traces", help="OTLP/HTTP trace receiver into the store")
    tsub = traces.add_subparsers(dest="traces_command", required=True)
    serve = tsub.add_parser("serve", help="receive OTLP traces, join chains, write the store")
    serve.add_argument("--db", required=True, help="SQLite store path")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4318)
    serve.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN'")
    serve.add_argument("--metrics-port", type=int, default=0,
                       help="serve Warden's own /metrics on this port (0: off)")
    serve.add_argument("--slow-threshold-s", type=float, default=0.5)
    serve.add_argument("--sample-rate", type=float, default=0.01)
    serve.add_argument("--settle-s", type=float, default=2.0)
    serve.set_defaults(func=_serve_traces)

    store = subparsers.add_parser("store", help="inspect or prune the SQLite store")
    ssub = store.add_subparsers(dest="store_command", required=True)
    info = ssub.add_parser("info", help="series, row counts and size")
    info.add_argument("--db", required=True)
    info.set_defaults(func=_store_info)
    prune = ssub.add_parser("prune", help="delete rows older than --older-than-s")
    prune.add_argument("--db", required=True)
    prune.add_argument("--older-than-s", type=float, required=True)
    prune.set_defaults(func=_store_prune)


def _serve_traces(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from collectors.chains import ChainJoiner
    from collectors.self_metrics import WardenMetrics, serve_metrics
    from collectors.trace_pipeline import TracePipeline
    from warden.store import Store

    registry = CollectorRegistry()
    metrics = WardenMetrics(registry)
    store = Store(args.db)
    metrics.track_store_size(store.size_bytes)
    joiner = ChainJoiner(slow_threshold_s=args.slow_threshold_s, sample_rate=args.sample_rate,
                         settle_s=args.settle_s)
    pipeline = TracePipeline(store, metrics=metrics, joiner=joiner, host=args.host,
                             port=args.port, bearer_token=args.token)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pipeline.start()
    logger.info("receiving OTLP traces on %s", pipeline.url)
    if args.metrics_port:
        port = serve_metrics(registry, args.metrics_port, args.host)
        logger.info("Warden metrics on http://%s:%d/metrics", args.host, port)
    stop.wait()
    pipeline.stop()
    store.close()
    return 0


def _store_info(args: argparse.Namespace) -> int:
    from warden.store import Store

    with Store(args.db, readonly=True) as store:
        counts = {t: int(store.query(f"SELECT COUNT(*) AS n FROM {t}")["n"].iloc[0])
                  for t in ("series", "samples", "chains", "spans", "gpu_readings", "anomalies")}
        print(json.dumps({"path": str(store.path), "size_bytes": store.size_bytes(),
                          "rows": counts}, indent=1))
    return 0


def _store_prune(args: argparse.Namespace) -> int:
    from warden.store import Store

    with Store(args.db) as store:
        print(json.dumps(store.prune(args.older_than_s), indent=1))
    return 0
