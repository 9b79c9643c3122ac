"""Warden's store: SQLite in WAL mode, one writer process, readers in any process.

Why SQLite: transactional, nothing to install, and WAL lets the dashboard and the CLI read while
the engine writes. The write side is this module (:class:`Store`); batching lives in
:mod:`warden.store_writer`; the DataFrame readers live in :mod:`warden.store_readers` and are
mixed into :class:`Store`, so one object serves both sides and a ``readonly=True`` store in another
process reads exactly what the writer committed.

Every write method runs one transaction with ``executemany``; callers that produce records one
at a time should go through :class:`warden.store_writer.StoreWriter`, which groups them.

Other components keep their own records here through :meth:`Store.ensure_table`,
:meth:`Store.insert_rows` and :meth:`Store.query`, and may register a timestamp column so that
:meth:`Store.prune` ages their rows out too.

Errors::

    StoreError(Exception)
     └── ReadOnlyStoreError   a write on a store opened with readonly=True
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warden.db import open_db
from warden.records import (
    Anomaly,
    GpuReading,
    Labels,
    RequestChain,
    Sample,
    Span,
    freeze_labels,
)
from warden.store_readers import StoreReaders
from warden.store_schema import (
    BUILTIN_RETENTION,
    GPU_COLUMNS,
    SCHEMA,
    STAGE_COLUMNS,
    anomaly_row,
    chain_row,
    gpu_row,
    labels_key,
    span_row,
)

__all__ = ["ReadOnlyStoreError", "Store", "StoreError"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StoreError(Exception):
    """Base of the store's errors."""


class ReadOnlyStoreError(StoreError):
    """A write was attempted on a store opened read-only."""


class Store(StoreReaders):
    """SQLite store for series, chains, spans, GPU readings and anomalies.

    Args:
        path: database file; created (with its parent directory) unless ``readonly``.
        clock: returns Unix seconds; used by :meth:`prune`, so tests need not sleep.
        readonly: open as a read-only URI; for readers in other processes.
    """

    def __init__(
        self, path: str | Path, *, clock: Callable[[], float] = time.time, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly and not self.path.exists():
            raise StoreError(f"no store at {self.path}: start the writer (engine) first")
        self._conn = open_db(self.path, readonly=readonly)
        self._conn.row_factory = sqlite3.Row
        self._series_ids: dict[tuple[str, Labels], int] = {}
        self.rejected_samples = 0
        if not readonly:
            self._conn.executescript(SCHEMA)

    # -- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStoreError(f"store {self.path} was opened read-only")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): all or nothing, serialised per store."""
        self._check_writable()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- series and samples ---------------------------------------------------------------------

    def _series_id(self, conn: sqlite3.Connection, name: str, labels: Labels) -> int:
        key = (name, labels)
        sid = self._series_ids.get(key)
        if sid is None:
            text = labels_key(labels)
            conn.execute("INSERT OR IGNORE INTO series (name, labels) VALUES (?, ?)", (name, text))
            row = conn.execute(
                "SELECT id FROM series WHERE name = ? AND labels = ?", (name, text)
            ).fetchone()
            sid = int(row[0])
            self._series_ids[key] = sid
        return sid

    def write_samples(self, samples: Iterable[Sample]) -> int:
        """Write samples in one transaction; returns how many were written.

        A NaN value is dropped and counted in :attr:`rejected_samples` (SQLite would store it as
        NULL and every reader would have to guess why). A second sample for the same series and
        timestamp replaces the first.
        """
        with self.transaction() as conn:
            rows = []
            ids = self._series_ids
            for s in samples:
                v = s.value
                if v != v:  # NaN, without a function call per sample
                    self.rejected_samples += 1
                    continue
                try:
                    sid = ids.get((s.series, s.labels))
                except TypeError:  # labels given as a dict: accept, but freeze them
                    sid = None
                    s = Sample(s.series, freeze_labels(s.labels), s.ts, v)
                if sid is None:
                    sid = self._series_id(conn, s.series, s.labels)
                rows.append((sid, s.ts, v))
            conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)", rows)
        return len(rows)

    # -- chains, spans, GPU, anomalies -----------------------------------------------------------

    def write_chains(self, chains: Iterable[RequestChain]) -> int:
        """Write request chains; a chain with a known trace id replaces the old one."""
        rows = [chain_row(c) for c in chains]
        ncol = 8 + len(STAGE_COLUMNS) + 1
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO chains VALUES ({', '.join('?' * ncol)})", rows
            )
        return len(rows)

    def write_spans(self, spans: Iterable[Span]) -> int:
        """Keep raw spans, meant for the chains kept whole (slow, failed, sampled)."""
        rows = [span_row(s) for s in spans]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def write_gpu_readings(self, readings: Iterable[GpuReading]) -> int:
        rows = []
        for r in readings:
            if not math.isfinite(r.ts):
                continue
            rows.append(gpu_row(r))
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT INTO gpu_readings ({', '.join(GPU_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(GPU_COLUMNS))})",
                rows,
            )
        return len(rows)

    def write_anomalies(self, anomalies: Iterable[Anomaly]) -> int:
        rows = [anomaly_row(a) for a in anomalies]
        with self.transaction() as conn:
            conn.executemany("INSERT INTO anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    # -- generic tables for other components ------------------------------------------------------

    def ensure_table(self, name: str, ddl: str, *, ts_column: str | None = None) -> None:
        """Create another component's table (``ddl`` uses CREATE ... IF NOT EXISTS).

        With ``ts_column`` (Unix seconds), :meth:`prune` removes its old rows as well.
        """
        for ident in (name, ts_column or "x"):
            if not _IDENT.match(ident):
                raise StoreError(f"not an identifier: {ident!r}")
        with self.transaction() as conn:
            # executescript would COMMIT behind our back, so run statement by statement
            for stmt in (s.strip() for s in ddl.split(";")):
                if stmt:
                    conn.execute(stmt)
            if ts_column:
                conn.execute(
                    "INSERT OR REPLACE INTO retention VALUES (?, ?)", (name, ts_column)
                )

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
        *, replace: bool = False,
    ) -> int:
        """Insert many rows into ``table`` in one transaction; returns the count."""
        for ident in (table, *columns):
            if not _IDENT.match(ident):
                raise StoreError(f"not an identifier: {ident!r}")
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        sql = (
            f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        data = [tuple(r) for r in rows]
        with self.transaction() as conn:
            conn.executemany(sql, data)
        return len(data)

    # -- retention and size ---------------------------------------------------------------------

    def prune(self, older_than_s: float) -> dict[str, int]:
        """Delete rows older than ``clock() - older_than_s`` from every dated table.

        Series left without samples are removed too, and forgotten by the writer's cache.
        Returns the rows deleted per table.
        """
        cutoff = self.clock() - older_than_s
        deleted: dict[str, int] = {}
        with self.transaction() as conn:
            tables = dict(BUILTIN_RETENTION)
            tables.update(
                {r[0]: r[1] for r in conn.execute("SELECT table_name, ts_column FROM retention")}
            )
            for table, col in tables.items():
                cur = conn.execute(f"DELETE FROM {table} WHERE {col} < ?", (cutoff,))
                deleted[table] = cur.rowcount
            cur = conn.execute(
                "DELETE FROM series WHERE NOT EXISTS "
                "(SELECT 1 FROM samples WHERE samples.series_id = series.id)"
            )
            deleted["series"] = cur.rowcount
            if cur.rowcount:
                self._series_ids.clear()
        return deleted

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = 0
        for p in (self.path, Path(f"{self.path}-wal")):
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def checkpoint(self) -> None:
        """Fold the WAL back into the database (the engine may call this when idle)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
