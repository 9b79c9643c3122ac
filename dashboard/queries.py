"""Fast reads for the dashboard: aggregate in SQL, downsample long series, never load a day raw.

Why not the store's generic readers everywhere: :meth:`Store.series` turns every sample into a
Python row, which for a day of 1 s samples on ten replicas is millions of objects and seconds of
work per page. Here SQLite does the averaging per time bucket and per series, and pandas only
sees a few hundred points per line. Each function takes the store and a time range in Unix
seconds and returns a DataFrame with fixed columns, empty when nothing matches; a table that does
not exist raises ``sqlite3.OperationalError`` and the page turns that into a message.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import numpy as np
import pandas as pd

from warden.store import Store

__all__ = [
    "GPU_CHART_FIELDS",
    "GPU_FIELDS",
    "bucket_seconds",
    "chain_latencies",
    "chain_models",
    "chain_stats",
    "gpu_devices",
    "gpu_latest",
    "latency_windows",
    "label_frame",
    "latest_ts",
    "sample_note",
    "series_last",
    "series_summary",
    "throttle_summary",
]

#: Numeric GPU fields the dashboard plots (averaged per bucket).
GPU_FIELDS: tuple[str, ...] = (
    "temperature_c", "power_w", "power_limit_w", "sm_clock_mhz", "sm_clock_max_mhz",
    "mem_clock_mhz", "utilization", "memory_used_bytes", "memory_total_bytes",
    "alloc_allocated_bytes", "alloc_reserved_bytes", "alloc_active_bytes",
    "alloc_inactive_split_bytes", "alloc_retries", "alloc_ooms", "xid_errors", "ecc_errors",
)
#: The GPU fields the GPU page charts (a subset: fewer columns to average over a day).
GPU_CHART_FIELDS: tuple[str, ...] = (
    "temperature_c", "sm_clock_mhz", "power_w", "utilization", "memory_used_bytes",
    "alloc_reserved_bytes", "alloc_allocated_bytes",
)
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
#: Most chains a page reads per query; past it, a systematic sample (see chain_latencies).
MAX_CHAIN_ROWS = 20_000


def bucket_seconds(start: float, end: float, points: int = 300, minimum: float = 1.0) -> float:
    """A round bucket width that gives about ``points`` buckets over ``[start, end)``."""
    span = max(end - start, minimum)
    raw = span / max(points, 1)
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if step >= raw and step >= minimum:
            return float(step)
    return float(np.ceil(raw))


def latest_ts(store: Store) -> float | None:
    """The newest timestamp among samples, chains and GPU readings (each an indexed MAX)."""
    best: float | None = None
    for table in ("samples", "chains", "gpu_readings"):
        try:
            df = store.query(f"SELECT MAX(ts) AS ts FROM {table}")
        except sqlite3.OperationalError:
            continue
        ts = df["ts"].iloc[0] if not df.empty else None
        if ts is not None and not pd.isna(ts):
            best = float(ts) if best is None else max(best, float(ts))
    return best


def label_frame(store: Store, name: str) -> pd.DataFrame:
    """``series_id`` and one column per label key for every series called ``name``."""
    ids = store.list_series(name)
    rows = [{"series_id": int(sid), **lab} for sid, lab in zip(ids["series_id"], ids["labels"],
                                                                strict=True)]
    return pd.DataFrame(rows, columns=["series_id"]) if not rows else pd.DataFrame(rows)


def series_last(store: Store, name: str, start: float, end: float) -> pd.DataFrame:
    """The newest sample in ``[start, end)`` of each series called ``name``: one seek each.

    Columns ``series_id``, ``last``, ``last_ts`` and the labels; series silent in the range are
    left out.
    """
    labels = label_frame(store, name)
    rows = []
    for sid in labels.get("series_id", []):
        df = store.query("SELECT value, ts FROM samples WHERE series_id = ? AND ts >= ? AND "
                         "ts < ? ORDER BY ts DESC LIMIT 1", (int(sid), start, end))
        if not df.empty:
            rows.append((int(sid), float(df["value"].iloc[0]), float(df["ts"].iloc[0])))
    out = pd.DataFrame(rows, columns=["series_id", "last", "last_ts"])
    return out.merge(labels, on="series_id", how="left") if rows else out


def series_summary(store: Store, name: str, start: float, end: float) -> pd.DataFrame:
    """Per series of ``name`` in ``[start, end)``: ``mean``, ``last``, ``last_ts``, ``n``, labels."""
    labels = label_frame(store, name)
    cols = ["series_id", "mean", "last", "last_ts", "n"]
    if labels.empty:
        return pd.DataFrame(columns=cols)
    ids = [int(x) for x in labels["series_id"]]
    # SQLite returns the bare column ``value`` from the row holding MAX(ts): the last value.
    df = store.query(
        "SELECT series_id, AVG(value) AS mean, value AS last, MAX(ts) AS last_ts, COUNT(*) AS n "
        f"FROM samples WHERE series_id IN ({', '.join('?' * len(ids))}) AND ts >= ? AND ts < ? "
        "GROUP BY series_id",
        [*ids, start, end],
    )
    if df.empty:
        return pd.DataFrame(columns=[*cols, *[c for c in labels.columns if c != "series_id"]])
    return df.merge(labels, on="series_id", how="left")


def chain_latencies(
    store: Store, start: float, end: float, *, model: str | None = None,
    replica: str | None = None, max_rows: int = MAX_CHAIN_ROWS,
) -> pd.DataFrame:
    """One row per traced request: ``ts``, ``model``, ``variant``, ``replica``, ``latency_s``,
    ``error`` (bool) -- the narrow columns the latency views need.

    Past ``max_rows`` chains in the range, a stratified sample of about ``max_rows`` is read
    (see :func:`_sampled_chains`). ``df.attrs`` holds ``total`` (chains in the range) and
    ``stride`` (about one chain in ``stride`` read; 1 means all were) so a page can say so.
    """
    where, params = ["ts >= ?", "ts < ?"], [start, end]
    for col, val in (("model", model), ("replica", replica)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    cond = " AND ".join(where)
    total = int(store.query(f"SELECT COUNT(*) AS n FROM chains WHERE {cond}", params)["n"].iloc[0])
    stride = max(1, -(-total // max_rows)) if max_rows > 0 else 1
    cols = "ts, model, variant, replica, latency_s, error"
    if stride > 1:
        df = _sampled_chains(store, cols, cond, params, start, end, stride)
    else:
        df = store.query(f"SELECT {cols} FROM chains WHERE {cond} ORDER BY ts", params)
    if df.empty:
        df = pd.DataFrame(columns=["ts", "model", "variant", "replica", "latency_s", "error"])
    df["error"] = df["error"].astype(bool)
    df.attrs.update(total=total, stride=stride)
    return df


def _sampled_chains(store: Store, cols: str, cond: str, params: list, start: float,
                    end: float, stride: int) -> pd.DataFrame:
    """About one chain in ``stride`` of those matching ``cond``, by rowid lookups.

    Why rowids: filtering every row of a day (``rowid % k``) still reads each row from the
    table, about a second for 170,000 chains here. Instead the range's exact rowid bounds come
    from the ``ts`` index alone, and one rowid is picked per block of ``stride`` (at a
    pseudo-random offset inside the block, so that replicas written in turn are not aliased),
    then fetched directly: the cost follows the sample, not the day. The same rows are picked
    on every refresh. Rows whose rowid falls in the range but not ``cond`` are dropped. Chains
    are written about in time order, so the rowids between the range's first and last chain
    are the range; a chain written late (after the range's last one) can be left out of the
    sample, which is a sample anyway.
    """
    # the rowids of the range's first and last chain by time: two index seeks (an exact
    # MIN/MAX over the range would read every index entry, about 0.2 s for a day)
    ends = store.query(
        "SELECT (SELECT rowid FROM chains WHERE ts >= ? AND ts < ? ORDER BY ts LIMIT 1) AS lo, "
        "(SELECT rowid FROM chains WHERE ts >= ? AND ts < ? ORDER BY ts DESC LIMIT 1) AS hi",
        (start, end, start, end))
    lo, hi = ends["lo"].iloc[0], ends["hi"].iloc[0]
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return pd.DataFrame()
    lo, hi = min(int(lo), int(hi)), max(int(lo), int(hi))
    step = stride  # rows failing ``cond`` are dropped, so matches ~ total / stride
    return store.query(
        # CROSS JOIN keeps the sample as the outer loop: one rowid lookup per pick
        "WITH RECURSIVE b(i, r) AS (SELECT 0, ? UNION ALL SELECT i + 1, ? + (i + 1) * ? + "
        "(((i + 1) * 2654435761) % 4294967291) % ? FROM b WHERE (i + 1) * ? <= ?) "
        f"SELECT {cols} FROM b CROSS JOIN chains ON chains.rowid = b.r "
        f"WHERE {cond} ORDER BY ts", [lo, lo, step, step, step, hi - lo, *params])


def sample_note(lat: pd.DataFrame) -> str:
    """A caption for a sampled chain frame, or ``""`` when every chain was read."""
    stride = lat.attrs.get("stride", 1)
    if stride <= 1:
        return ""
    return (f"Latency from a sample: about 1 in {stride} of {lat.attrs['total']:,} traced "
            f"requests in the window ({len(lat):,} read).")


def chain_models(store: Store, start: float, end: float) -> list[str]:
    """Models with traced requests in ``[start, end)``, without scanning the chains.

    A skip-scan over the ``(model, ts)`` index lists the models (one seek each), and one more
    seek per model checks it has a chain in the range.
    """
    df = store.query(
        "WITH RECURSIVE m(model) AS (SELECT MIN(model) FROM chains UNION ALL "
        "SELECT (SELECT MIN(model) FROM chains WHERE model > m.model) FROM m "
        "WHERE m.model IS NOT NULL) SELECT model FROM m WHERE model IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM chains c WHERE c.model = m.model AND c.ts >= ? AND c.ts < ?) "
        "ORDER BY model", (start, end))
    return [str(x) for x in df["model"]]


def chain_stats(lat: pd.DataFrame, by: Sequence[str] = ("model", "replica")) -> pd.DataFrame:
    """Requests, errors, error ratio and P50/P95/P99 latency (seconds) per ``by`` group."""
    cols = [*by, "requests", "errors", "error_ratio", "p50", "p95", "p99"]
    if lat.empty:
        return pd.DataFrame(columns=cols)
    g = lat.groupby(list(by), sort=True)
    out = g["latency_s"].count().rename("requests").to_frame()
    out["errors"] = g["error"].sum().astype(int)
    out["error_ratio"] = out["errors"] / out["requests"]
    for q in QUANTILES:
        out[f"p{q * 100:g}"] = g["latency_s"].quantile(q)
    return out.reset_index()[cols]


def latency_windows(lat: pd.DataFrame, window_s: float, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per window (and ``by``): ``count``, P50/P95/P99 and ``std`` (the jitter) of latency."""
    cols = ["window_start", *by, "count", "p50", "p95", "p99", "std"]
    if lat.empty:
        return pd.DataFrame(columns=cols)
    df = lat.assign(window_start=(lat["ts"] // window_s) * window_s)
    g = df.groupby(["window_start", *by], sort=True)["latency_s"]
    out = g.count().rename("count").to_frame()
    for q in QUANTILES:
        out[f"p{q * 100:g}"] = g.quantile(q)
    out["std"] = g.std(ddof=0)
    return out.reset_index()[cols]


def gpu_devices(store: Store) -> list[str]:
    """Every device with readings, by a skip-scan over the ``(device, ts)`` index."""
    df = store.query(
        "WITH RECURSIVE d(device) AS (SELECT MIN(device) FROM gpu_readings UNION ALL "
        "SELECT (SELECT MIN(device) FROM gpu_readings WHERE device > d.device) FROM d "
        "WHERE d.device IS NOT NULL) SELECT device FROM d WHERE device IS NOT NULL")
    return [str(x) for x in df["device"]]


def gpu_latest(store: Store, start: float, end: float) -> pd.DataFrame:
    """The newest reading of each device seen in ``[start, end)``, one row per device.

    Devices are enumerated with a skip-scan over the ``(device, ts)`` index (one seek per
    device), then each device's newest reading is one more seek: a day of readings costs the
    same as a minute.
    """
    frames = []
    for device in gpu_devices(store):
        row = store.query(
            "SELECT * FROM gpu_readings WHERE device = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts DESC LIMIT 1", (device, start, end))
        if not row.empty:
            frames.append(row)
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    df["simulated"] = df["simulated"].astype(bool)
    df["throttle_reasons"] = [", ".join(json.loads(x or "[]")) for x in df["throttle_reasons"]]
    return df


def throttle_summary(store: Store, start: float, end: float) -> pd.DataFrame:
    """Per device and throttle reason: readings throttled, first and last time seen."""
    raw = store.query(
        "SELECT device, throttle_reasons, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts "
        "FROM gpu_readings WHERE ts >= ? AND ts < ? AND throttle_reasons NOT IN ('[]', '') "
        "GROUP BY device, throttle_reasons",
        [start, end],
    )
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for device, reasons, n, first, last in raw.itertuples(index=False):
        try:
            names = json.loads(reasons) or []
        except ValueError:
            names = [str(reasons)]
        for reason in names:
            r = rows.setdefault((device, str(reason)), {"readings": 0, "first_ts": first,
                                                        "last_ts": last})
            r["readings"] += int(n)
            r["first_ts"] = min(r["first_ts"], first)
            r["last_ts"] = max(r["last_ts"], last)
    out = [{"device": d, "reason": reason, **v} for (d, reason), v in sorted(rows.items())]
    return pd.DataFrame(out, columns=["device", "reason", "readings", "first_ts", "last_ts"])


def most_interesting_devices(latest: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` devices to draw first from :func:`gpu_latest`'s frame: throttling ones, then
    the hottest (an operator opening the page is looking for the device in trouble)."""
    throttled = [bool(r) and r not in ("[]", "()") for r in latest["throttle_reasons"]]
    ranked = latest.assign(_throttled=throttled).sort_values(
        ["_throttled", "temperature_c"], ascending=False, kind="stable")
    return [str(d) for d in ranked["device"].head(n)]
