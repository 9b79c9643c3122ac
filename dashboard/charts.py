"""Plotly figures the pages draw; pure functions of DataFrames, so they are testable alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from warden.records import Stage

__all__ = [
    "band_figure",
    "line_spec",
    "stage_layout",
    "timeline_figure",
    "waterfall_figure",
]

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, hovermode="x unified",
               legend=dict(orientation="h", y=-0.2), xaxis=dict(type="date"))


def _dt(ts: pd.Series) -> np.ndarray:
    """Unix seconds to epoch milliseconds, which a plotly ``date`` axis reads as UTC.

    Why not datetimes: plotly validates datetime arrays element by element (about 25 ms per
    300-point trace); plain float arrays pass at once, and a GPU page has dozens of traces.
    """
    return np.asarray(ts, dtype=float) * 1000.0


def line_spec(df: pd.DataFrame, y: str, color: str | None, title: str, *, yaxis: str = "",
              x: str = "ts") -> tuple[pd.DataFrame, dict]:
    """A Vega-Lite line chart (data, spec) of ``y`` over time, one line per ``color`` value.

    Why Vega-Lite for plain lines: one spec serves any number of lines (the data is long-form,
    sent as Arrow), where plotly builds and validates one trace object per line, about 10 ms
    each; a GPU page with ten devices and eight metrics would spend a second on that alone.
    Interactive through tooltips and Streamlit's full-screen view only: Vega-Lite's
    scale-bound zoom and legend selections cost about half a second of browser main thread per
    chart (measured in headless Chromium), which a page of eight charts cannot afford; the
    plotly charts (latency band, waterfall, timelines) keep zoom and pan.
    """
    cols = [c for c in (x, y, color) if c]
    data = df[cols].rename(columns={x: "t", y: "v", **({color: "series"} if color else {})})
    data = data.assign(t=_dt(data["t"]), v=data["v"].astype(float))
    enc: dict = {
        "x": {"field": "t", "type": "temporal", "title": "UTC", "scale": {"type": "utc"},
              "axis": {"format": "%H:%M", "labelOverlap": True}},
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
            "height": 260, "encoding": enc}
    return data, spec


def band_figure(win: pd.DataFrame, band: pd.DataFrame | None, anomalies: pd.DataFrame,
                title: str, *, scale: float = 1000.0) -> go.Figure:
    """Quantile lines per window, the baseline band behind them, anomalies as markers.

    ``win`` has ``window_start``, ``p50``, ``p95``, ``p99`` (seconds); ``band`` has ``ts``,
    ``lower``, ``median``, ``upper`` (seconds); ``anomalies`` has ``ts``, ``detector``,
    ``series``, ``score``. Values are drawn in milliseconds (``scale``).
    """
    fig = go.Figure()
    if band is not None and not band.empty:
        x = _dt(band["ts"])
        fig.add_trace(go.Scatter(x=x, y=band["upper"] * scale, mode="lines", line=dict(width=0),
                                 name="baseline upper", showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=band["lower"] * scale, mode="lines", line=dict(width=0),
                                 fill="tonexty", fillcolor="rgba(99,110,250,0.15)",
                                 name="baseline band"))
        fig.add_trace(go.Scatter(x=x, y=band["median"] * scale, mode="lines",
                                 line=dict(dash="dot", color="rgba(99,110,250,0.8)"),
                                 name="baseline median"))
    x = _dt(win["window_start"]) if not win.empty else []
    for q, colour in (("p50", "#2ca02c"), ("p95", "#ff7f0e"), ("p99", "#d62728")):
        if q in win.columns:
            fig.add_trace(go.Scatter(x=x, y=win[q] * scale, mode="lines", name=q.upper(),
                                     line=dict(color=colour)))
    if not anomalies.empty:
        top = float(win["p99"].max() * scale) if not win.empty else 1.0
        fig.add_trace(go.Scatter(
            x=_dt(anomalies["ts"]), y=[top * 1.05] * len(anomalies), mode="markers",
            marker=dict(symbol="x", size=11, color="black"), name="anomaly",
            text=[f"{d} on {s} (score {sc:.2f})" for d, s, sc in
                  zip(anomalies["detector"], anomalies["series"], anomalies["score"],
                      strict=True)],
            hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, yaxis_title="latency (ms)", **_LAYOUT)
    return fig


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


def waterfall_figure(bars: pd.DataFrame, title: str, *, label: str = "stage") -> go.Figure:
    """Horizontal bars from ``start_s`` for ``duration_s`` (seconds), outermost on top, in ms."""
    fig = go.Figure(go.Bar(
        y=bars[label], x=bars["duration_s"] * 1000, base=bars["start_s"] * 1000,
        orientation="h", text=[f"{d * 1000:.2f} ms" for d in bars["duration_s"]],
        textposition="auto", marker_color="#636efa",
        hovertemplate="%{y}: starts %{base:.2f} ms, lasts %{x:.2f} ms<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="ms since the request started",
                      yaxis=dict(autorange="reversed"), margin=_LAYOUT["margin"],
                      height=max(240, 40 * len(bars) + 100))
    return fig


def timeline_figure(df: pd.DataFrame, start: str, end: str, row: str, color: str,
                    title: str, hover: Sequence[str] = ()) -> go.Figure:
    """Gantt-style bars: one per row of ``df``, from ``start`` to ``end`` (Unix seconds)."""
    fig = go.Figure()
    for name, g in df.groupby(color, sort=True):
        s, e = g[start].astype(float), g[end].astype(float)
        fig.add_trace(go.Bar(
            y=g[row], x=(e - s).clip(lower=1.0) * 1000, base=_dt(s), orientation="h",
            name=str(name),
            customdata=g[list(hover)].astype(str).to_numpy() if hover else None,
            hovertemplate=("<br>".join(f"{h}: %{{customdata[{i}]}}" for i, h in
                                       enumerate(hover)) or "%{y}") + "<extra></extra>"))
    fig.update_layout(title=title, barmode="overlay", xaxis=dict(type="date"),
                      margin=_LAYOUT["margin"], height=max(240, 30 * df[row].nunique() + 120))
    return fig
