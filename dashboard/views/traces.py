"""Traces: the slowest request chains of a model, and one chain's waterfall down to the GPU."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import charts, queries
from dashboard.cache import cached
from warden.store import Store
from dashboard.ui import PageContext, guarded, run_page, to_datetime
from warden.records import Stage

ALL = "(all)"
GPU_WINDOW_S = 5.0  # nearest GPU reading within this many seconds of the request
STAGES = [s.value for s in Stage]


def _gpu_for(ctx: PageContext, row: pd.Series) -> tuple[dict | None, str]:
    """The GPU reading the chain carries, else the replica's reading nearest in time."""
    if isinstance(row.get("gpu"), str) and row["gpu"]:
        return json.loads(row["gpu"]), "recorded with the request (model span attributes)"
    near = ctx.store.query(
        "SELECT * FROM gpu_readings WHERE replica = ? AND ts BETWEEN ? AND ? "
        "ORDER BY ABS(ts - ?) LIMIT 1",
        (row["replica"], row["ts"] - GPU_WINDOW_S, row["ts"] + GPU_WINDOW_S, row["ts"]))
    if near.empty:
        return None, ""
    d = near.iloc[0].to_dict()
    d["throttle_reasons"] = json.loads(d.get("throttle_reasons") or "[]")
    return d, f"nearest reading of replica {row['replica']} (within {GPU_WINDOW_S:g} s)"


def _waterfall(ctx: PageContext, row: pd.Series) -> None:
    spans = ctx.store.spans(row["trace_id"])
    if not spans.empty:
        t0 = int(spans["start_ns"].min())
        bars = pd.DataFrame({
            "span": [f"{n} ({s})" for n, s in zip(spans["name"], spans["service"], strict=True)],
            "start_s": (spans["start_ns"] - t0) / 1e9,
            "duration_s": (spans["end_ns"] - spans["start_ns"]) / 1e9})
        st.vega_lite_chart(*charts.waterfall_spec(bars, "Spans as received", label="span"),
                           key="traces_waterfall")
        st.caption("Offsets from the raw spans kept for this trace.")
    else:
        stages = {s: float(row[s]) for s in STAGES if pd.notna(row.get(s))}
        bars = charts.stage_layout(stages)
        if bars.empty:
            st.info("This chain has no stage durations recorded.")
            return
        st.vega_lite_chart(*charts.waterfall_spec(bars, "Stages, client to GPU"),
                           key="traces_waterfall")
        st.caption("Durations as measured; start offsets estimated from the nesting of stages "
                   "(raw spans were not kept for this trace).")
    durations = pd.DataFrame({"stage": [s for s in STAGES if pd.notna(row.get(s))],
                              "duration_ms": [float(row[s]) * 1000 for s in STAGES
                                              if pd.notna(row.get(s))]})
    st.dataframe(durations, hide_index=True, key="traces_stages")


def body(ctx: PageContext) -> None:
    models = cached(ctx.store, queries.chain_models, ctx.start, ctx.end)
    if not models:
        st.info("No request chains in this window. Chains are joined from OTLP traces sent by "
                "the load generator, the router and Triton.")
        return
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("Model", [ALL, *models], key="traces_model")
    replica = c2.text_input("Replica (blank for all)", key="traces_replica").strip() or None
    limit = int(c3.number_input("Chains", 5, 200, 20, step=5, key="traces_limit"))
    slow = cached(ctx.store, Store.slowest_chains, None if model == ALL else model, ctx.start,
                  ctx.end, limit=limit, replica=replica)
    if slow.empty:
        st.info("No chains match this model and replica in the window.")
        return
    st.subheader(f"Slowest {len(slow)} chains")
    table = slow.assign(time=to_datetime(slow["ts"]), latency_ms=slow["latency_s"] * 1000)
    for s in STAGES:
        table[f"{s}_ms"] = table[s] * 1000
    st.dataframe(table[["trace_id", "time", "model", "variant", "replica", "latency_ms", "error",
                        *[f"{s}_ms" for s in STAGES]]], hide_index=True, key="traces_slowest")
    ms = dict(zip(slow["trace_id"], slow["latency_s"] * 1000, strict=True))
    pick = st.selectbox("Trace", list(ms), key="traces_pick",
                        format_func=lambda t: f"{t} ({ms[t]:.1f} ms)")
    row = slow[slow["trace_id"] == pick].iloc[0]
    st.subheader(f"Chain {pick}")
    c = st.columns(4)
    c[0].metric("Latency (ms)", f"{row['latency_s'] * 1000:.2f}")
    c[1].metric("Replica", str(row["replica"]))
    c[2].metric("Variant", str(row["variant"]))
    c[3].metric("Error", "yes" if row["error"] else "no")
    guarded("Waterfall", _waterfall, ctx, row)
    gpu, where = _gpu_for(ctx, row)
    st.subheader("GPU at that time")
    if gpu is None:
        st.info("No GPU reading for this replica near the request's time.")
        return
    kind = "SIMULATED (GPU twin)" if gpu.get("simulated") else "hardware"
    st.caption(f"Device `{gpu.get('device')}`, {kind}; {where}.")
    shown = {k: v for k, v in gpu.items() if k in queries.GPU_FIELDS and v is not None}
    shown["throttle_reasons"] = ", ".join(gpu.get("throttle_reasons") or []) or "none"
    st.dataframe(pd.DataFrame({"field": list(shown), "value": [str(v) for v in shown.values()]}),
                 hide_index=True, key="traces_gpu")


run_page("Traces", body)
