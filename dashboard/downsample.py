"""Long series as a few hundred points per line: exact bucket averages, or index probes.

Why two paths: averaging every sample in SQL is exact and fast up to some hundred thousand
rows, but a day of 1 s samples on ten replicas is 864,000 rows per series name (and as many GPU
readings), which takes seconds to scan. Past :data:`EXACT_MAX_ROWS` rows, each bucket is instead
summarised by :data:`PROBES` index seeks spread evenly across it (the first sample at or after
each probe time), so the cost follows the number of points drawn, not the rows stored. The
returned frame's ``attrs["method"]`` says which path ran so the page can say so; short spikes
between probes can be missed on the probe path.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.queries import GPU_CHART_FIELDS, bucket_seconds, gpu_devices, label_frame
from warden.store import Store

__all__ = ["EXACT_MAX_ROWS", "PROBES", "gpu", "method_note", "series"]

EXACT_MAX_ROWS = 150_000
PROBES = 4


def _probe_times(start: float, step: float, end: float) -> str:
    # recursive CTE of probe times: PROBES per bucket, bucket = floor(x / step) * step
    return (f"WITH RECURSIVE t(x) AS (SELECT {float(start)!r} UNION ALL SELECT x + "
            f"{step / PROBES!r} FROM t WHERE x + {step / PROBES!r} < {float(end)!r})")


def series(store: Store, name: str, start: float, end: float, *, points: int = 300,
           labels: dict[str, str] | None = None) -> pd.DataFrame:
    """``name`` per bucket: ``ts`` (bucket start), ``value`` (mean), ``vmin``, ``vmax``, labels."""
    lab = label_frame(store, name)
    for k, v in (labels or {}).items():
        lab = lab[lab[k] == v] if k in lab.columns else lab.iloc[0:0]
    cols = ["ts", "value", "vmin", "vmax", "series_id"]
    if lab.empty:
        return pd.DataFrame(columns=cols)
    ids = [int(x) for x in lab["series_id"]]
    step = bucket_seconds(start, end, points)
    marks = ", ".join("?" * len(ids))
    rows = int(store.query(f"SELECT COUNT(*) AS n FROM samples WHERE series_id IN ({marks}) "
                           "AND ts >= ? AND ts < ?", [*ids, start, end])["n"].iloc[0])
    if rows <= EXACT_MAX_ROWS:
        method = "exact"
        df = store.query(
            "SELECT CAST(ts / ? AS INTEGER) * ? AS ts, AVG(value) AS value, MIN(value) AS vmin, "
            f"MAX(value) AS vmax, series_id FROM samples WHERE series_id IN ({marks}) "
            "AND ts >= ? AND ts < ? GROUP BY series_id, CAST(ts / ? AS INTEGER) "
            "ORDER BY series_id, ts", [step, step, *ids, start, end, step])
    else:
        method = "probes"
        probe = step / PROBES
        df = store.query(
            _probe_times(start, step, end) + ", s(id) AS (SELECT value FROM json_each(?)), "
            "p AS (SELECT s.id AS series_id, CAST(t.x / ? AS INTEGER) * ? AS ts, "
            "(SELECT value FROM samples WHERE series_id = s.id AND ts >= t.x AND ts < t.x + ? "
            "ORDER BY ts LIMIT 1) AS v FROM t, s) "
            "SELECT ts, AVG(v) AS value, MIN(v) AS vmin, MAX(v) AS vmax, series_id FROM p "
            "WHERE v IS NOT NULL GROUP BY series_id, ts ORDER BY series_id, ts",
            [str(ids), step, step, probe])
    if df.empty:
        df = pd.DataFrame(columns=cols)
    out = df.merge(lab, on="series_id", how="left") if not df.empty else df
    out.attrs.update(method=method, rows=rows)
    return out


def gpu(store: Store, start: float, end: float, *, points: int = 300,
        devices: Sequence[str] | None = None) -> pd.DataFrame:
    """GPU readings per device and bucket: the chart fields averaged, ``simulated`` if any
    reading was, ``throttled`` the share of readings with a throttle reason."""
    step = bucket_seconds(start, end, points)
    cols = ["device", "ts", "simulated", "replica", "throttled", *GPU_CHART_FIELDS]
    if devices is None:
        devices = gpu_devices(store)
    if not devices:
        return pd.DataFrame(columns=cols)
    marks = ", ".join("?" * len(devices))
    rows = int(store.query("SELECT COUNT(*) AS n FROM gpu_readings WHERE ts >= ? AND ts < ?",
                           (start, end))["n"].iloc[0])
    avgs = ", ".join(f"AVG({f}) AS {f}" for f in GPU_CHART_FIELDS)
    head = ("SELECT device, {ts} AS ts, MAX(simulated) AS simulated, MAX(replica) AS replica, "
            "AVG(CASE WHEN throttle_reasons IN ('[]', '') THEN 0.0 ELSE 1.0 END) AS throttled, "
            f"{avgs} FROM ")
    if rows <= EXACT_MAX_ROWS:
        method = "exact"
        df = store.query(
            head.format(ts="CAST(ts / ? AS INTEGER) * ?") + "gpu_readings WHERE ts >= ? AND "
            f"ts < ? AND device IN ({marks}) GROUP BY device, CAST(ts / ? AS INTEGER) "
            "ORDER BY device, ts", [step, step, start, end, *devices, step])
    else:
        method = "probes"
        df = store.query(
            _probe_times(start, step, end) + ", d(device) AS (SELECT value FROM json_each(?)), "
            "p AS (SELECT (SELECT rowid FROM gpu_readings WHERE device = d.device AND "
            "ts >= t.x AND ts < t.x + ? ORDER BY ts LIMIT 1) AS rid FROM t, d) "
            + head.format(ts="CAST(ts / ? AS INTEGER) * ?")
            + "gpu_readings JOIN p ON gpu_readings.rowid = p.rid "
            "GROUP BY device, CAST(ts / ? AS INTEGER) ORDER BY device, ts",
            [_json_list(devices), step / PROBES, step, step, step])
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["simulated"] = df["simulated"].astype(bool)
    df.attrs.update(method=method, rows=rows)
    return df


def _json_list(items: Sequence[str]) -> str:
    import json

    return json.dumps(list(items))


def method_note(df: pd.DataFrame) -> str:
    """A caption for frames drawn from probes, ``""`` for exact ones."""
    if df.attrs.get("method") != "probes":
        return ""
    return (f"Long window ({df.attrs.get('rows', 0):,} rows): each point averages {PROBES} "
            "evenly spaced readings per bucket, not every reading; narrow the time range for "
            "exact averages.")
