"""Readers over the store that return pandas DataFrames.

Mixed into :class:`warden.store.Store`. Why DataFrames: the dashboard plots them and the
detectors window them, and both want columns, not rows. Every reader filters by a time range
``[start, end)`` in Unix seconds (either end may be ``None``) and returns an empty frame with the
right columns when nothing matches, so callers never special-case "no data yet".

Latency quantiles come from the ``chains`` table (one row per traced request): Triton 2.51
exposes no latency histogram for ordinary models, and its summaries are costly, so traces are
the mergeable source of per-replica P50/P95/P99 (see ``collectors/triton.py``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from warden.records import RequestChain, Stage
from warden.store_schema import STAGE_COLUMNS, chain_from_row

__all__ = ["StoreReaders", "quantile_column"]

_CHAIN_BASE = ("trace_id", "ts", "model", "variant", "replica", "latency_s", "error", "span_count")


def quantile_column(q: float) -> str:
    """Column name for quantile ``q``: 0.5 -> ``p50``, 0.999 -> ``p99.9``."""
    return f"p{q * 100:g}"


def _range(col: str, start: float | None, end: float | None) -> tuple[list[str], list[Any]]:
    where, params = [], []
    if start is not None:
        where.append(f"{col} >= ?")
        params.append(start)
    if end is not None:
        where.append(f"{col} < ?")
        params.append(end)
    return where, params


def _window_quantiles(
    df: pd.DataFrame, value: str, q: Sequence[float], window_s: float, by: Sequence[str]
) -> pd.DataFrame:
    cols = ["window_start", *by, "count", *(quantile_column(x) for x in q)]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.assign(window_start=(df["ts"] // window_s) * window_s)
    keys = ["window_start", *by]
    grouped = df.groupby(keys, sort=True)[value]
    out = grouped.count().rename("count").to_frame()
    for x in q:
        out[quantile_column(x)] = grouped.quantile(x)
    return out.reset_index()[cols]


class StoreReaders:
    """The read half of the store; expects ``self._conn`` and ``self._lock``."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a read query and return its rows as a DataFrame (columns from the cursor)."""
        with self._lock:
            cur = self._conn.execute(sql, tuple(params))
            rows = cur.fetchall()
            cols = [d[0] for d in cur.description or ()]
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)

    # -- series ---------------------------------------------------------------------------------

    def list_series(self, name: str | None = None) -> pd.DataFrame:
        """Known series: ``series_id``, ``name``, ``labels`` (a dict)."""
        sql = "SELECT id AS series_id, name, labels FROM series"
        df = self.query(sql + (" WHERE name = ?" if name else "") + " ORDER BY name, id",
                        (name,) if name else ())
        df["labels"] = [json.loads(x) for x in df["labels"]]
        return df

    def _match(self, name: str, labels: Mapping[str, str] | None) -> list[tuple[int, dict[str, str]]]:
        want = {str(k): str(v) for k, v in (labels or {}).items()}
        out = []
        for sid, lab in zip(*self._series_cols(name), strict=True):
            if all(lab.get(k) == v for k, v in want.items()):
                out.append((sid, lab))
        return out

    def _series_cols(self, name: str) -> tuple[list[int], list[dict[str, str]]]:
        df = self.list_series(name)
        return list(df["series_id"]), list(df["labels"])

    def series(
        self, name: str, labels: Mapping[str, str] | None = None,
        start: float | None = None, end: float | None = None,
    ) -> pd.DataFrame:
        """Samples of every series called ``name`` whose labels include ``labels``.

        Columns: ``ts``, ``value``, ``series_id`` and one column per label key; sorted by time.
        """
        matched = self._match(name, labels)
        keys = sorted({k for _, lab in matched for k in lab})
        cols = ["ts", "value", "series_id", *keys]
        if not matched:
            return pd.DataFrame(columns=cols)
        where, params = _range("ts", start, end)
        ids = [sid for sid, _ in matched]
        where.append(f"series_id IN ({', '.join('?' * len(ids))})")
        df = self.query(
            f"SELECT ts, value, series_id FROM samples WHERE {' AND '.join(where)}",
            [*params, *ids],
        )
        by_id = dict(matched)
        for k in keys:
            df[k] = [by_id[sid].get(k, "") for sid in df["series_id"]]
        return df.sort_values(["ts", "series_id"], kind="stable").reset_index(drop=True)[cols]

    def quantiles(
        self, name: str, q: Sequence[float] = (0.5, 0.95, 0.99), window_s: float = 60.0,
        start: float | None = None, end: float | None = None,
        labels: Mapping[str, str] | None = None, by: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Quantiles of a series' values per time window (and per label in ``by``).

        Columns: ``window_start``, the ``by`` labels, ``count``, ``p50``, ``p95``, ``p99``...
        """
        df = self.series(name, labels, start, end)
        for k in by:
            if k not in df.columns:
                df[k] = ""
        return _window_quantiles(df, "value", q, window_s, by)

    # -- chains and spans -------------------------------------------------------------------------

    def _chains_df(self, where: list[str], params: list[Any], tail: str = "") -> pd.DataFrame:
        sql = f"SELECT {', '.join(_CHAIN_BASE)}, {', '.join(STAGE_COLUMNS)}, gpu FROM chains"
        if where:
            sql += " WHERE " + " AND ".join(where)
        df = self.query(sql + tail, params)
        if df.empty:
            df = pd.DataFrame(columns=[*_CHAIN_BASE, *STAGE_COLUMNS, "gpu"])
        df = df.rename(columns={c: s.value for c, s in zip(STAGE_COLUMNS, Stage, strict=True)})
        df["error"] = df["error"].astype(bool)
        for s in Stage:
            df[s.value] = df[s.value].astype(float)
        return df

    @staticmethod
    def _chain_filters(
        start: float | None, end: float | None, model: str | None, replica: str | None,
        variant: str | None, error: bool | None,
    ) -> tuple[list[str], list[Any]]:
        where, params = _range("ts", start, end)
        for col, val in (("model", model), ("replica", replica), ("variant", variant)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if error is not None:
            where.append("error = ?")
            params.append(int(error))
        return where, params

    def chains(
        self, start: float | None = None, end: float | None = None, *,
        model: str | None = None, replica: str | None = None, variant: str | None = None,
        error: bool | None = None, limit: int | None = None,
    ) -> pd.DataFrame:
        """Request chains in time order; one column per stage (seconds, NaN when unseen)."""
        where, params = self._chain_filters(start, end, model, replica, variant, error)
        tail = " ORDER BY ts"
        if limit is not None:
            tail += " LIMIT ?"
            params.append(int(limit))
        return self._chains_df(where, params, tail)

    def chain(self, trace_id: str) -> pd.DataFrame:
        """The chain of one trace id as a one-row frame (empty when unknown)."""
        return self._chains_df(["trace_id = ?"], [trace_id])

    def read_chain(self, trace_id: str) -> RequestChain | None:
        """The chain of one trace id as the shared record, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM chains WHERE trace_id = ?", (trace_id,)
            ).fetchone()
        return chain_from_row(row) if row is not None else None

    def slowest_chains(
        self, model: str | None = None, start: float | None = None, end: float | None = None,
        limit: int = 10, *, replica: str | None = None,
    ) -> pd.DataFrame:
        """The ``limit`` slowest chains, slowest first."""
        where, params = self._chain_filters(start, end, model, replica, None, None)
        params.append(int(limit))
        return self._chains_df(where, params, " ORDER BY latency_s DESC LIMIT ?")

    def spans(self, trace_id: str) -> pd.DataFrame:
        """Raw spans kept for one trace (chains kept whole), in start order."""
        df = self.query(
            "SELECT trace_id, span_id, parent_span_id, name, service, start_ns, end_ns, "
            "attributes, events, status_error FROM spans WHERE trace_id = ? ORDER BY start_ns",
            (trace_id,),
        )
        df["attributes"] = [json.loads(x) for x in df["attributes"]]
        df["events"] = [json.loads(x) for x in df["events"]]
        return df

    def chain_quantiles(
        self, q: Sequence[float] = (0.5, 0.95, 0.99), window_s: float = 60.0,
        start: float | None = None, end: float | None = None, *, stage: str | None = None,
        model: str | None = None, replica: str | None = None, variant: str | None = None,
        by: Sequence[str] = ("replica",),
    ) -> pd.DataFrame:
        """Latency quantiles from traced requests, per window and per ``by`` column.

        ``stage`` picks one stage's duration (e.g. ``"queue"``) instead of end-to-end latency.
        """
        df = self.chains(start, end, model=model, replica=replica, variant=variant)
        value = stage or "latency_s"
        if value not in df.columns:
            raise ValueError(f"unknown stage {stage!r}; known: {[s.value for s in Stage]}")
        df = df[[*("ts", value), *by]].dropna(subset=[value])
        df[value] = df[value].astype(float)
        return _window_quantiles(df, value, q, window_s, by)

    # -- GPU and anomalies ------------------------------------------------------------------------

    def gpu_readings(
        self, device: str | None = None, replica: str | None = None,
        start: float | None = None, end: float | None = None,
    ) -> pd.DataFrame:
        """GPU readings in time order; ``throttle_reasons`` as a list, ``simulated`` as bool."""
        where, params = _range("ts", start, end)
        for col, val in (("device", device), ("replica", replica)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT * FROM gpu_readings" + (" WHERE " + " AND ".join(where) if where else "")
        df = self.query(sql + " ORDER BY ts", params)
        if not df.empty:
            df["simulated"] = df["simulated"].astype(bool)
            df["throttle_reasons"] = [json.loads(x) for x in df["throttle_reasons"]]
        return df

    def anomalies(
        self, start: float | None = None, end: float | None = None, *,
        detector: str | None = None, series: str | None = None,
    ) -> pd.DataFrame:
        where, params = _range("ts", start, end)
        for col, val in (("detector", detector), ("series", series)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT * FROM anomalies" + (" WHERE " + " AND ".join(where) if where else "")
        df = self.query(sql + " ORDER BY ts", params)
        if not df.empty:
            df["labels"] = [json.loads(x) for x in df["labels"]]
            df["evidence"] = [json.loads(x) for x in df["evidence"]]
        return df
