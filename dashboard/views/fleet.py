"""Fleet: replicas and their health, request and error rates, P50/P95/P99, router state."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, downsample, queries, sources
from dashboard.cache import cached
from dashboard.ui import PageContext, guarded, run_page

RECENT_S = 60.0  # "now" for rates: the last minute of data


def replica_table(ctx: PageContext, lat: pd.DataFrame) -> pd.DataFrame:
    """Per replica: up, request rate and error ratio over the last minute; latency in window."""
    recent = max(ctx.start, ctx.end - RECENT_S)
    up = cached(ctx.store, queries.series_last, "triton_up", ctx.start, ctx.end)
    ok = cached(ctx.store, queries.series_summary, "triton_request_success_per_second",
                recent, ctx.end)
    bad = cached(ctx.store, queries.series_summary, "triton_request_failure_per_second",
                 recent, ctx.end)
    stats = queries.chain_stats(lat, by=("replica",))
    names = set()
    for df in (up, ok, bad, stats):
        if "replica" in df.columns:
            names.update(str(x) for x in df["replica"].dropna())
    rows = []
    for r in sorted(names):
        def total(df: pd.DataFrame, r: str = r) -> float:
            return float(df.loc[df["replica"] == r, "mean"].sum()) if "replica" in df else 0.0

        u = up.loc[up["replica"] == r, "last"] if "replica" in up else pd.Series(dtype=float)
        s = stats.loc[stats["replica"] == r] if not stats.empty else stats
        rate_ok, rate_bad = total(ok), total(bad)
        rows.append({
            "replica": r,
            "health": ("up" if u.iloc[0] >= 1 else "DOWN") if len(u) else "unknown",
            "request_rate_per_s": rate_ok + rate_bad,
            "error_rate": rate_bad / (rate_ok + rate_bad) if rate_ok + rate_bad > 0 else 0.0,
            "traced_requests": int(s["requests"].iloc[0]) if len(s) else 0,
            "p50_ms": float(s["p50"].iloc[0]) * 1000 if len(s) else float("nan"),
            "p95_ms": float(s["p95"].iloc[0]) * 1000 if len(s) else float("nan"),
            "p99_ms": float(s["p99"].iloc[0]) * 1000 if len(s) else float("nan"),
        })
    return pd.DataFrame(rows, columns=["replica", "health", "request_rate_per_s", "error_rate",
                                       "traced_requests", "p50_ms", "p95_ms", "p99_ms"])


def _summary(ctx: PageContext, lat: pd.DataFrame) -> None:
    table = replica_table(ctx, lat)
    if table.empty:
        st.info("No replicas seen in this window: no `triton_up` samples and no traces yet.")
        return
    total_rate = float(table["request_rate_per_s"].sum())
    errors = float((table["request_rate_per_s"] * table["error_rate"]).sum())
    c = st.columns(4)
    c[0].metric("Replicas", len(table))
    c[1].metric("Healthy", int((table["health"] == "up").sum()))
    c[2].metric("Requests/s (last min)", f"{total_rate:.1f}")
    c[3].metric("Error rate (last min)", f"{(errors / total_rate if total_rate else 0):.2%}")
    st.subheader("Replicas")
    st.caption("Rates: mean of the last minute of Triton metrics. Latency: traced requests in "
               "the window.")
    st.dataframe(table, hide_index=True, key="fleet_replicas", column_config={
        "error_rate": st.column_config.NumberColumn(format="percent"),
        "request_rate_per_s": st.column_config.NumberColumn(format="%.2f"),
        "p50_ms": st.column_config.NumberColumn(format="%.2f"),
        "p95_ms": st.column_config.NumberColumn(format="%.2f"),
        "p99_ms": st.column_config.NumberColumn(format="%.2f")})


def _per_model(ctx: PageContext, lat: pd.DataFrame) -> None:
    st.subheader("Latency per model and replica")
    stats = queries.chain_stats(lat, by=("model", "variant", "replica"))
    if stats.empty:
        st.info("No traced requests in this window.")
        return
    for q in ("p50", "p95", "p99"):
        stats[f"{q}_ms"] = stats.pop(q) * 1000
    st.dataframe(stats, hide_index=True, key="fleet_models")


def _rates(ctx: PageContext) -> None:
    df = cached(ctx.store, downsample.series, "triton_request_success_per_second",
                ctx.start, ctx.end)
    if df.empty:
        st.info("No `triton_request_success_per_second` samples in this window.")
        return
    per = df.groupby(["ts", "replica"], as_index=False)["value"].sum()
    data, spec = charts.line_spec(per, "value", "replica", "Successful requests/s",
                                  yaxis="req/s")
    st.vega_lite_chart(data, spec, key="fleet_rate_chart", height=300)
    if note := downsample.method_note(df):
        st.caption(note)


def _router(ctx: PageContext) -> None:
    st.subheader("Router")
    state = sources.router_state(ctx.settings.lab_state_path)
    st.caption(f"{state.url}, policy `{state.policy}`")
    c1, c2 = st.columns(2)
    c1.markdown("**Weights**")
    c1.dataframe(state.replicas, hide_index=True, key="fleet_router_weights")
    c2.markdown("**Variant split** (share of requests sent to `<model>_lite`)")
    c2.dataframe(state.variant_split, hide_index=True, key="fleet_variant_split")


def body(ctx: PageContext) -> None:
    lat = guarded("Traced requests", cached, ctx.store, queries.chain_latencies, ctx.start,
                  ctx.end)
    if lat is None:
        lat = pd.DataFrame(
            columns=["ts", "model", "variant", "replica", "latency_s", "error"])
    guarded("Fleet summary", _summary, ctx, lat)
    guarded("Latency per model", _per_model, ctx, lat)
    if note := queries.sample_note(lat):
        st.caption(note)
    guarded("Request rate", _rates, ctx)
    guarded("Router", _router, ctx)


run_page("Fleet", body)
