"""Latency: quantiles over time with the learned baseline as a band, jitter, anomalies."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import charts, queries, sources
from dashboard.cache import cached
from warden.store import Store
from dashboard.ui import PageContext, run_page, to_datetime

ALL = "(all)"


def _band(ctx: PageContext, win: pd.DataFrame, model: str) -> tuple[pd.DataFrame, str]:
    """The stored baseline for this model if the anomaly part keeps one, else a rolling one."""
    try:
        stored = cached(ctx.store, sources.baseline_band, ctx.start, ctx.end)
    except sources.SourceMissing:
        stored = pd.DataFrame()
    if not stored.empty:
        labels = [json.loads(x) if isinstance(x, str) and x.startswith("{") else {}
                  for x in stored["labels"]]
        mine = stored[[lab.get("model") in (None, model) for lab in labels]]
        if not mine.empty:
            series = sorted(mine["series"].unique())
            pick = st.selectbox("Baseline series", series, key="latency_baseline_series")
            return (mine[mine["series"] == pick][["ts", "lower", "median", "upper"]],
                    f"Band: the stored baseline of `{pick}` (table `baselines`).")
    band = sources.rolling_band(win["p99"]) if not win.empty else pd.DataFrame()
    if not band.empty:
        band = band.assign(ts=win["window_start"].to_numpy())
    return band, ("Band: no stored baselines yet, so it is computed here from history: rolling "
                  "median of P99 over the previous 30 windows +- 3 x 1.4826 x MAD (at least 5% of the "
                  "median).")


def body(ctx: PageContext) -> None:
    models = cached(ctx.store, queries.chain_models, ctx.start, ctx.end)
    if not models:
        st.info("No traced requests in this window, so no latency quantiles. Traces come from "
                "the load generator through the router to Triton (`warden up` with tracing on).")
        _anomaly_table(ctx)
        return
    c1, c2 = st.columns(2)
    model = c1.selectbox("Model", models, key="latency_model")
    lat = cached(ctx.store, queries.chain_latencies, ctx.start, ctx.end, model=model)
    reps = sorted(str(r) for r in lat["replica"].unique())
    replica = c2.selectbox("Replica", [ALL, *reps], key="latency_replica")
    if replica != ALL:
        lat = cached(ctx.store, queries.chain_latencies, ctx.start, ctx.end, model=model,
                     replica=replica)
    window_s = queries.bucket_seconds(ctx.start, ctx.end, points=120, minimum=10.0)
    win = queries.latency_windows(lat, window_s)
    anomalies = cached(ctx.store, Store.anomalies, ctx.start, ctx.end)
    band, caption = _band(ctx, win, model)
    jit = queries.latency_windows(lat, window_s, by=("replica",))
    jit["std_ms"] = jit["std"] * 1000
    # one chart element for both (each element costs the browser a Vega runtime)
    data, spec = charts.vconcat_spec([
        charts.band_spec(win, band, anomalies,
                         f"{model}: latency quantiles per {window_s:g} s window"),
        charts.line_spec(jit, "std_ms", "replica",
                         "Jitter: standard deviation of latency per window, per replica",
                         x="window_start", yaxis="ms")])
    st.vega_lite_chart(data, spec, key="latency_quantiles")
    st.caption(caption + (" " + queries.sample_note(lat) if queries.sample_note(lat) else "")
               + " Jitter (below the quantiles): standard deviation of latency per window.")
    overall = queries.chain_stats(lat.assign(model=model), by=("model",))
    if not overall.empty:
        r = overall.iloc[0]
        c = st.columns(4)
        c[0].metric("Requests", int(r["requests"]))
        c[1].metric("P50 (ms)", f"{r['p50'] * 1000:.2f}")
        c[2].metric("P95 (ms)", f"{r['p95'] * 1000:.2f}")
        c[3].metric("P99 (ms)", f"{r['p99'] * 1000:.2f}")
    _anomaly_table(ctx, anomalies)


def _anomaly_table(ctx: PageContext, df: pd.DataFrame | None = None) -> None:
    st.subheader("Anomalies")
    df = cached(ctx.store, Store.anomalies, ctx.start, ctx.end) if df is None else df
    if df.empty:
        st.info("No anomalies detected in this window.")
        return
    show = df.assign(time=to_datetime(df["ts"]),
                     labels=[", ".join(f"{k}={v}" for k, v in sorted(x.items()))
                             for x in df["labels"]],
                     evidence=[json.dumps(x, sort_keys=True) for x in df["evidence"]])
    st.dataframe(show[["time", "detector", "series", "labels", "score", "baseline", "observed",
                       "evidence"]].sort_values("time", ascending=False),
                 hide_index=True, key="latency_anomalies")


run_page("Latency", body)
