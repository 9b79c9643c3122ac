"""The store's own tables, and how records become rows and rows become records.

Kept apart from :mod:`warden.store` so the writer, the readers and the benchmark agree on one
definition of every column. Samples live in a ``WITHOUT ROWID`` table clustered on
``(series_id, ts)``: one B-tree per insert instead of a table plus an index, and a time-range read
of one series is a single contiguous scan. Series names and label sets are interned once in
``series`` so a sample row is three numbers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from warden.records import Anomaly, GpuReading, RequestChain, Span, Stage, freeze_labels

__all__ = [
    "BUILTIN_RETENTION",
    "GPU_COLUMNS",
    "SCHEMA",
    "STAGE_COLUMNS",
    "anomaly_row",
    "chain_from_row",
    "chain_row",
    "gpu_from_row",
    "gpu_row",
    "labels_key",
    "span_row",
]

STAGE_COLUMNS: tuple[str, ...] = tuple(f"stage_{s.value}" for s in Stage)
GPU_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GpuReading))
_GPU_TYPES = {
    "device": "TEXT", "replica": "TEXT", "simulated": "INTEGER", "throttle_reasons": "TEXT",
    "xid_errors": "INTEGER", "ecc_errors": "INTEGER", "alloc_retries": "INTEGER",
    "alloc_ooms": "INTEGER",
}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    value REAL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts);
CREATE TABLE IF NOT EXISTS chains (
    trace_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,
    replica TEXT NOT NULL,
    latency_s REAL NOT NULL,
    error INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    {", ".join(f"{c} REAL" for c in STAGE_COLUMNS)},
    gpu TEXT
);
CREATE INDEX IF NOT EXISTS chains_ts ON chains (ts);
CREATE INDEX IF NOT EXISTS chains_model_ts ON chains (model, ts);
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    ts REAL NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    status_error INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_ts ON spans (ts);
CREATE TABLE IF NOT EXISTS gpu_readings (
    {", ".join(f"{c} {_GPU_TYPES.get(c, 'REAL')}" for c in GPU_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS gpu_readings_device_ts ON gpu_readings (device, ts);
CREATE INDEX IF NOT EXISTS gpu_readings_ts ON gpu_readings (ts);
CREATE TABLE IF NOT EXISTS anomalies (
    ts REAL NOT NULL,
    detector TEXT NOT NULL,
    series TEXT NOT NULL,
    labels TEXT NOT NULL,
    score REAL NOT NULL,
    baseline REAL,
    observed REAL,
    evidence TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS anomalies_ts ON anomalies (ts);
CREATE TABLE IF NOT EXISTS retention (
    table_name TEXT PRIMARY KEY,
    ts_column TEXT NOT NULL
);
"""

#: Tables pruned by age, with the column that holds their Unix-seconds timestamp.
BUILTIN_RETENTION: dict[str, str] = {
    "samples": "ts", "chains": "ts", "spans": "ts", "gpu_readings": "ts", "anomalies": "ts",
}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def labels_key(labels: Mapping[str, str] | tuple[tuple[str, str], ...] | None) -> str:
    """The canonical text of a label set: JSON of the sorted pairs, as an object."""
    return _json(dict(freeze_labels(labels)))


def gpu_row(r: GpuReading) -> tuple[Any, ...]:
    out: list[Any] = []
    for name in GPU_COLUMNS:
        v = getattr(r, name)
        if name == "throttle_reasons":
            v = _json(list(v))
        elif name == "simulated":
            v = int(bool(v))
        out.append(v)
    return tuple(out)


def gpu_from_row(row: Mapping[str, Any]) -> GpuReading:
    kw = {c: row[c] for c in GPU_COLUMNS}
    kw["simulated"] = bool(kw["simulated"])
    kw["throttle_reasons"] = tuple(json.loads(kw["throttle_reasons"] or "[]"))
    return GpuReading(**kw)


def chain_row(c: RequestChain) -> tuple[Any, ...]:
    stages = [c.stages.get(s.value) for s in Stage]
    gpu = _json(dataclasses.asdict(c.gpu)) if c.gpu is not None else None
    return (
        c.trace_id, c.ts, c.model, c.variant, c.replica, c.latency_s, int(c.error),
        c.span_count, *stages, gpu,
    )


def chain_from_row(row: Mapping[str, Any]) -> RequestChain:
    stages = {
        s.value: row[col] for s, col in zip(Stage, STAGE_COLUMNS, strict=True)
        if row[col] is not None
    }
    gpu = None
    if row["gpu"]:
        d = json.loads(row["gpu"])
        d["throttle_reasons"] = tuple(d.get("throttle_reasons") or ())
        gpu = GpuReading(**d)
    return RequestChain(
        trace_id=row["trace_id"], ts=row["ts"], model=row["model"], variant=row["variant"],
        replica=row["replica"], latency_s=row["latency_s"], stages=stages,
        error=bool(row["error"]), gpu=gpu, span_count=row["span_count"],
    )


def span_row(s: Span) -> tuple[Any, ...]:
    return (
        s.trace_id, s.span_id, s.parent_span_id, s.name, s.service, s.start_ns, s.end_ns,
        s.start_ns / 1e9, _json(dict(s.attributes)), _json([list(e) for e in s.events]),
        int(s.status_error),
    )


def anomaly_row(a: Anomaly) -> tuple[Any, ...]:
    return (
        a.ts, a.detector, a.series, labels_key(a.labels), a.score, a.baseline, a.observed,
        _json(dict(a.evidence)),
    )
