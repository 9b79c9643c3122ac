"""Vega-Lite charts the pages draw: pure functions of DataFrames, so they are testable alone.

Why Vega-Lite only, no plotly: a page's load time in the browser is mostly JavaScript. Plotly's
bundle is 4.7 MB, and its first chart on a cold page cost seconds of main thread in headless
Chromium on this (shared, 2-core) machine (a single 8-10 s long task on the Traces page under
load); Vega-Lite's bundle is already there for the line charts. Every function returns
``(data, spec)`` for ``st.vega_lite_chart``: long-form data (sent once, as Arrow) and a spec
that filters it per layer. Times are epoch milliseconds on a UTC time axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from warden.records import Stage

__all__ = [
    "MAX_POINTS_PER_SERIES",
    "PANEL_POINTS",
    "band_spec",
    "events_spec",
    "line_spec",
    "panels_spec",
    "stage_layout",
    "timeline_spec",
    "vconcat_spec",
    "waterfall_spec",
]

#: Most points a chart sends per series; callers downsample before (queries, downsample).
MAX_POINTS_PER_SERIES = 2_000
#: Points per series in a small-multiples panel (``panels_spec``, about 380 px wide): one per
#: ~3 px keeps the shape, and the GPU page's eight panels of ten devices send 9,600 points, not
#: 24,000 (the browser's cost of a chart follows the points it draws).
PANEL_POINTS = 120
#: Merged into every spec: draw on a canvas (one element, not an SVG node per mark; Streamlit
#: picks canvas by itself only past 2,000 points) and skip ARIA attributes per mark.
_LIGHT: dict = {"usermeta": {"embedOptions": {"renderer": "canvas"}}, "config": {"aria": False}}
#: 24-hour UTC ticks with seconds: Vega's own multi-format labels minute ticks "%I:%M", a
#: 12-hour clock without AM/PM, so 22:15 read "10:15" under a window title saying 22:15; the
#: seconds keep ticks distinct on a short "All" window of a two-minute lab run. A labelExpr,
#: because an axis "format" was left unapplied in Streamlit 1.67's charts (seen in Chromium).
_TIME = {"type": "temporal", "title": "UTC", "scale": {"type": "utc"},
         "axis": {"labelOverlap": True,
                  "labelExpr": "utcFormat(datum.value, '%H:%M:%S')"}}
_TOOLTIP_TIME = {"field": "t", "type": "temporal", "title": "time (UTC)",
                 "timeUnit": "utcyearmonthdatehoursminutesseconds"}


def _dt(ts: pd.Series) -> np.ndarray:
    """Unix seconds to epoch milliseconds, which a Vega-Lite ``utc`` time scale reads."""
    return np.asarray(ts, dtype=float) * 1000.0


def _thin(df: pd.DataFrame, color: str | None) -> pd.DataFrame:
    """Every k-th row per series so none sends more than :data:`MAX_POINTS_PER_SERIES` points
    (a safety net: the queries already downsample to a few hundred)."""
    n = df.groupby(color, sort=False).size().max() if color and not df.empty else len(df)
    if n <= MAX_POINTS_PER_SERIES:
        return df
    k = -(-int(n) // MAX_POINTS_PER_SERIES)
    pos = df.groupby(color, sort=False).cumcount() if color else pd.Series(range(len(df)),
                                                                            index=df.index)
    return df[pos % k == 0]


def line_spec(df: pd.DataFrame, y: str, color: str | None, title: str, *, yaxis: str = "",
              x: str = "ts") -> tuple[pd.DataFrame, dict]:
    """A Vega-Lite line chart (data, spec) of ``y`` over time, one line per ``color`` value.

    Why Vega-Lite for plain lines: one spec serves any number of lines (the data is long-form,
    sent as Arrow), where plotly builds and validates one trace object per line, about 10 ms
    each; a GPU page with ten devices and eight metrics would spend a second on that alone.
    Interactive through tooltips and Streamlit's full-screen view only: Vega-Lite's
    scale-bound zoom and legend selections cost about half a second of browser main thread per
    chart (measured in headless Chromium), which a page of eight charts cannot afford.
    """
    cols = [c for c in (x, y, color) if c]
    df = _thin(df, color)
    data = df[cols].rename(columns={x: "t", y: "v", **({color: "series"} if color else {})})
    data = data.assign(t=_dt(data["t"]), v=data["v"].astype(float))
    enc: dict = {
        "x": {"field": "t", **_TIME},
        "y": {"field": "v", "type": "quantitative", "title": yaxis or y},
        "tooltip": [{"field": "t", "type": "temporal", "title": "time (UTC)",
                     "timeUnit": "utcyearmonthdatehoursminutesseconds"},
                    {"field": "v", "type": "quantitative", "format": ".4~g", "title": y}],
    }
    if color:
        data["series"] = data["series"].astype(str)
        enc["color"] = {"field": "series", "type": "nominal", "title": None,
                        "legend": {"orient": "right"}}
        enc["tooltip"].insert(0, {"field": "series", "type": "nominal", "title": color})
    spec = {"title": title, "mark": {"type": "line", "interpolate": "linear"},
            "height": 260, "encoding": enc, **_LIGHT}
    return data, spec


def panels_spec(df: pd.DataFrame, panels: Sequence[tuple[str, str, str, float]], color: str,
                *, columns: int = 2, width: int = 380) -> tuple[pd.DataFrame, dict]:
    """Several metrics of ``df`` over time as small multiples in ONE chart, a line per ``color``.

    ``panels``: ``(field, title, unit, scale)``; a field with no value is left out. Why one
    faceted chart and not one chart per metric: in headless Chromium each chart on a page cost
    about half a CPU second of renderer on a cold page (its own Vega runtime, parse and
    dataflow); the GPU page's eight charts cost four. One spec with a facet pays that once.
    Each panel has its own y scale; ``panel`` holds "title (unit)".
    """
    parts = []
    for field, title, unit, scale in panels:
        if field not in df.columns or df[field].isna().all():
            continue
        part = _thin(df, color)
        parts.append(pd.DataFrame({"panel": f"{title} ({unit})", "t": _dt(part["ts"]),
                                   "v": part[field].astype(float) * scale,
                                   "series": part[color].astype(str)}))
    cols = ["panel", "t", "v", "series"]
    data = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    order = list(dict.fromkeys(data["panel"]))
    spec = {
        "facet": {"field": "panel", "type": "nominal", "title": None, "sort": order,
                  "header": {"labelFontSize": 14, "labelFontWeight": "bold",
                             "labelAnchor": "start"}},
        "columns": columns,
        "spec": {"width": width, "height": 200, "mark": {"type": "line"}, "encoding": {
            "x": {"field": "t", **_TIME},
            "y": {"field": "v", "type": "quantitative", "title": None},
            "color": {"field": "series", "type": "nominal", "title": None,
                      "legend": {"orient": "top"}},
            "tooltip": [{"field": "series", "title": color}, _TOOLTIP_TIME,
                        {"field": "v", "type": "quantitative", "format": ".4~g"}]}},
        "resolve": {"scale": {"y": "independent"}, "axis": {"x": "independent"}},
        **_LIGHT,
    }
    return data, spec


def band_spec(win: pd.DataFrame, band: pd.DataFrame | None, anomalies: pd.DataFrame,
              title: str, *, scale: float = 1000.0) -> tuple[pd.DataFrame, dict]:
    """Quantile lines per window, the baseline band behind them, anomalies as crosses.

    ``win`` has ``window_start``, ``p50``, ``p95``, ``p99`` (seconds); ``band`` has ``ts``,
    ``lower``, ``median``, ``upper`` (seconds); ``anomalies`` has ``ts``, ``detector``,
    ``series``, ``score``. Values are drawn in milliseconds (``scale``). The data is one long
    frame: ``layer`` says which layer draws a row (``band``, ``quantile``, ``anomaly``).
    """
    parts = []
    if band is not None and not band.empty:
        parts.append(pd.DataFrame({
            "layer": "band", "series": "baseline", "t": _dt(band["ts"]),
            "v": band["median"].astype(float) * scale, "lo": band["lower"].astype(float) * scale,
            "hi": band["upper"].astype(float) * scale, "text": ""}))
    for q in ("p50", "p95", "p99"):
        if q in win.columns and not win.empty:
            parts.append(pd.DataFrame({
                "layer": "quantile", "series": q.upper(), "t": _dt(win["window_start"]),
                "v": win[q].astype(float) * scale, "lo": np.nan, "hi": np.nan, "text": ""}))
    if not anomalies.empty:
        top = float(win["p99"].max() * scale) if not win.empty else 1.0
        parts.append(pd.DataFrame({
            "layer": "anomaly", "series": "anomaly", "t": _dt(anomalies["ts"]),
            "v": top * 1.05, "lo": np.nan, "hi": np.nan,
            "text": [f"{d} on {s} (score {sc:.2f})" for d, s, sc in
                     zip(anomalies["detector"], anomalies["series"], anomalies["score"],
                         strict=True)]}))
    cols = ["layer", "series", "t", "v", "lo", "hi", "text"]
    data = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    x = {"field": "t", **_TIME}
    colours = {"domain": ["P50", "P95", "P99"], "range": ["#2ca02c", "#ff7f0e", "#d62728"]}

    def only(layer: str) -> list[dict]:
        return [{"filter": {"field": "layer", "equal": layer}}]

    spec = {"title": title, "height": 300, "layer": [
        {"transform": only("band"), "mark": {"type": "area", "opacity": 0.18,
                                             "color": "#636efa"},
         "encoding": {"x": x, "y": {"field": "lo", "type": "quantitative",
                                    "title": "latency (ms)"}, "y2": {"field": "hi"},
                      "tooltip": [_TOOLTIP_TIME,
                                  {"field": "lo", "format": ".3~f", "title": "band lower ms"},
                                  {"field": "hi", "format": ".3~f", "title": "band upper ms"}]}},
        {"transform": only("band"), "mark": {"type": "line", "strokeDash": [3, 3],
                                             "color": "#636efa"},
         "encoding": {"x": x, "y": {"field": "v", "type": "quantitative"}}},
        {"transform": only("quantile"), "mark": {"type": "line"},
         "encoding": {"x": x, "y": {"field": "v", "type": "quantitative"},
                      "color": {"field": "series", "type": "nominal", "title": None,
                                "scale": colours, "legend": {"orient": "bottom"}},
                      "tooltip": [{"field": "series", "title": "quantile"}, _TOOLTIP_TIME,
                                  {"field": "v", "format": ".3~f", "title": "ms"}]}},
        {"transform": only("anomaly"), "mark": {"type": "point", "shape": "cross", "size": 120,
                                                "filled": True, "color": "black"},
         "encoding": {"x": x, "y": {"field": "v", "type": "quantitative"},
                      "tooltip": [_TOOLTIP_TIME, {"field": "text", "title": "anomaly"}]}},
    ], **_LIGHT}
    return data, spec


def stage_layout(stages: dict[str, float]) -> pd.DataFrame:
    """Estimated start offsets for a chain's stages from their durations alone.

    Why estimates: a chain row keeps durations, not start times. Outer stages nest (client
    contains router contains Triton's HTTP handling), the time outside an inner stage is split
    evenly before and after it; queue and compute stages follow one another inside Triton; the
    model code sits inside compute_infer. Columns: ``stage``, ``start_s``, ``duration_s``.
    """
    rows: list[tuple[str, float, float]] = []
    offset, parent = 0.0, None
    for name in ("client", "router", "triton_http"):
        d = stages.get(name)
        if d is None or d != d:
            continue
        if parent is not None:
            offset += max(parent - d, 0.0) / 2
        rows.append((name, offset, d))
        parent = d
    seq = [s for s in ("queue", "compute_input", "compute_infer", "compute_output")
           if stages.get(s) is not None and stages[s] == stages[s]]
    total = sum(stages[s] for s in seq)
    t = offset + (max((parent or total) - total, 0.0) / 2 if parent is not None else 0.0)
    for s in seq:
        rows.append((s, t, stages[s]))
        if s == "compute_infer" and stages.get("model_code") == stages.get("model_code") \
                and stages.get("model_code") is not None:
            mc = stages["model_code"]
            rows.append(("model_code", t + max(stages[s] - mc, 0.0) / 2, mc))
        t += stages[s]
    if "model_code" in stages and stages["model_code"] == stages["model_code"] and \
            not any(r[0] == "model_code" for r in rows):
        rows.append(("model_code", t, stages["model_code"]))
    order = {s.value: i for i, s in enumerate(Stage)}
    rows.sort(key=lambda r: order.get(r[0], 99))
    return pd.DataFrame(rows, columns=["stage", "start_s", "duration_s"])


def waterfall_spec(bars: pd.DataFrame, title: str, *,
                   label: str = "stage") -> tuple[pd.DataFrame, dict]:
    """Horizontal bars from ``start_s`` for ``duration_s`` (seconds) in ms, in the given order
    (outermost first), each labelled with its duration."""
    data = pd.DataFrame({
        "label": bars[label].astype(str), "start_ms": bars["start_s"].astype(float) * 1000,
        "end_ms": (bars["start_s"] + bars["duration_s"]).astype(float) * 1000,
        "ms": bars["duration_s"].astype(float) * 1000})
    data["text"] = [f"{d:.2f} ms" for d in data["ms"]]
    y = {"field": "label", "type": "nominal", "sort": None, "title": None,
         "axis": {"labelLimit": 320}}
    spec = {"title": title, "height": {"step": 34}, "layer": [
        {"mark": {"type": "bar", "color": "#636efa"},
         "encoding": {"y": y, "x": {"field": "start_ms", "type": "quantitative",
                                    "title": "ms since the request started"},
                      "x2": {"field": "end_ms"},
                      "tooltip": [{"field": "label", "title": label},
                                  {"field": "start_ms", "format": ".2f", "title": "starts (ms)"},
                                  {"field": "ms", "format": ".2f", "title": "lasts (ms)"}]}},
        {"mark": {"type": "text", "align": "left", "dx": 4},
         "encoding": {"y": y, "x": {"field": "end_ms", "type": "quantitative"},
                      "text": {"field": "text"}}},
    ], **_LIGHT}
    return data, spec


def timeline_spec(df: pd.DataFrame, start: str, end: str, row: str, color: str, title: str,
                  hover: Sequence[str] = ()) -> tuple[pd.DataFrame, dict]:
    """Gantt-style bars: one per row of ``df``, from ``start`` to ``end`` (Unix seconds); a bar
    lasts at least a second so that instants stay visible."""
    s, e = df[start].astype(float), df[end].astype(float)
    data = pd.DataFrame({"row": df[row].astype(str), "color": df[color].astype(str),
                         "t": _dt(s), "t2": _dt(np.maximum(e, s + 1.0))})
    for h in hover:
        data[f"h_{h}"] = df[h].astype(str).to_numpy()
    spec = {"title": title, "height": {"step": 30},
            "mark": {"type": "bar", "opacity": 0.8},
            "encoding": {"y": {"field": "row", "type": "nominal", "title": None},
                         "x": {"field": "t", **_TIME}, "x2": {"field": "t2"},
                         "color": {"field": "color", "type": "nominal", "title": color,
                                   "legend": {"orient": "bottom"}},
                         "tooltip": [*({"field": f"h_{h}", "title": h} for h in hover),
                                     _TOOLTIP_TIME]}, **_LIGHT}
    return data, spec


def events_spec(ev: pd.DataFrame, title: str) -> tuple[pd.DataFrame, dict]:
    """Timeline events (``ts``, ``kind``, ``message``) as points, one row per kind."""
    data = pd.DataFrame({"t": _dt(ev["ts"]), "kind": ev["kind"].astype(str),
                         "message": ev["message"].astype(str)})
    spec = {"title": title, "height": {"step": 30},
            "mark": {"type": "point", "filled": True, "size": 140},
            "encoding": {"x": {"field": "t", **_TIME},
                         "y": {"field": "kind", "type": "nominal", "title": None},
                         "color": {"field": "kind", "type": "nominal", "legend": None},
                         "tooltip": [_TOOLTIP_TIME, {"field": "kind"},
                                     {"field": "message"}]}, **_LIGHT}
    return data, spec


def vconcat_spec(charts: Sequence[tuple[pd.DataFrame, dict]], *,
                 width: int = 900) -> tuple[pd.DataFrame, dict]:
    """Several ``(data, spec)`` charts stacked in ONE Vega-Lite chart.

    Why: in headless Chromium each chart element costs its own Vega runtime (parse, dataflow,
    a canvas) whatever its size; two charts stacked in one spec pay that once. The data is
    the charts' frames one after another with a ``chart`` column (0, 1, ...) that each view
    filters on; columns one chart lacks are empty for the others' rows. Scales, axes and
    legends stay independent, as they were for separate charts.
    """
    frames, views = [], []
    for i, (data, spec) in enumerate(charts):
        frames.append(data.assign(chart=i))
        view = {k: v for k, v in spec.items() if k not in ("usermeta", "config")}
        view["transform"] = [{"filter": {"field": "chart", "equal": i}},
                             *view.get("transform", [])]
        if "facet" not in view:
            view.setdefault("width", width)
        views.append(view)
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["chart"])
    spec = {"vconcat": views, "spacing": 30,
            "resolve": {"scale": {"color": "independent", "x": "independent",
                                  "y": "independent"},
                        "legend": {"color": "independent"}}, **_LIGHT}
    return data, spec
