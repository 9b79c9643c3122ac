"""GPUs: temperature, clocks, power, utilisation, memory, allocator, throttling; twins marked."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, downsample, queries
from dashboard.cache import cached
from dashboard.ui import PageContext, guarded, run_page, to_datetime

CHARTS: tuple[tuple[str, str, str, float], ...] = (
    # field, title, unit, scale
    ("temperature_c", "Temperature", "°C", 1.0),
    ("sm_clock_mhz", "SM clock", "MHz", 1.0),
    ("power_w", "Power", "W", 1.0),
    ("utilization", "Utilisation", "fraction", 1.0),
    ("memory_used_bytes", "Memory used", "GiB", 1 / 2**30),
    ("alloc_reserved_bytes", "Allocator: reserved", "GiB", 1 / 2**30),
    ("alloc_allocated_bytes", "Allocator: allocated", "GiB", 1 / 2**30),
    ("throttled", "Share of readings throttled", "fraction", 1.0),
)


#: devices drawn by default: ten lines on each of eight panels cost the browser about a second
#: more per view and read as a tangle; the rest are one pick away
DEFAULT_DEVICES = 4


def _latest(ctx: PageContext) -> list[str]:
    latest = cached(ctx.store, queries.gpu_latest, ctx.start, ctx.end)
    if latest.empty:
        st.info("No GPU readings in this window. Without a GPU, the lab's simulated twin "
                "provides them (collected from each replica's control port).")
        return []
    if latest["simulated"].any():
        st.warning("Devices marked SIMULATED are Warden's GPU twin (a physical model), not "
                   "hardware.")
    show = latest.assign(
        kind=["SIMULATED" if s else "hardware" for s in latest["simulated"]],
        time=to_datetime(latest["ts"]),
        memory_used_gib=latest["memory_used_bytes"] / 2**30,
        memory_total_gib=latest["memory_total_bytes"] / 2**30,
        alloc_reserved_gib=latest["alloc_reserved_bytes"].astype(float) / 2**30,
        alloc_allocated_gib=latest["alloc_allocated_bytes"].astype(float) / 2**30)
    st.subheader("Now")
    st.dataframe(show[["device", "kind", "replica", "time", "temperature_c", "sm_clock_mhz",
                       "sm_clock_max_mhz", "power_w", "power_limit_w", "utilization",
                       "memory_used_gib", "memory_total_gib", "alloc_allocated_gib",
                       "alloc_reserved_gib", "alloc_retries", "alloc_ooms", "throttle_reasons",
                       "xid_errors", "ecc_errors"]],
                 hide_index=True, key="gpus_latest")
    st.session_state.setdefault("gpus_default",
                                queries.most_interesting_devices(latest, DEFAULT_DEVICES))
    return [str(d) for d in latest["device"]]


def _history(ctx: PageContext, devices: list[str]) -> None:
    default = [d for d in st.session_state.get("gpus_default", devices) if d in devices]
    picked = st.multiselect("Devices", devices, default=default or devices, key="gpus_devices")
    if len(picked) < len(devices):
        st.caption(f"{len(picked)} of {len(devices)} devices drawn (throttling first, then the "
                   "hottest); add more above.")
    df = cached(ctx.store, downsample.gpu, ctx.start, ctx.end, points=charts.PANEL_POINTS,
                devices=picked or devices)
    if df.empty:
        return
    df["label"] = [f"{d} (simulated)" if s else d for d, s in
                   zip(df["device"], df["simulated"], strict=True)]
    missing = [title for field, title, _, _ in CHARTS if df[field].isna().all()]
    if missing:
        st.caption(f"Not reported: {', '.join(missing)} (no CUDA caching allocator here).")
    data, spec = charts.panels_spec(df, CHARTS, "label")
    st.vega_lite_chart(data, spec, key="gpus_history")
    if note := downsample.method_note(df):
        st.caption(note)


def _throttle(ctx: PageContext) -> None:
    st.subheader("Throttle reasons")
    t = cached(ctx.store, queries.throttle_summary, ctx.start, ctx.end)
    if t.empty:
        st.info("No throttling in this window.")
        return
    st.dataframe(t.assign(first=to_datetime(t["first_ts"]), last=to_datetime(t["last_ts"]))
                 [["device", "reason", "readings", "first", "last"]],
                 hide_index=True, key="gpus_throttle")


def body(ctx: PageContext) -> None:
    devices = guarded("Latest readings", _latest, ctx)
    if devices:
        guarded("GPU history", _history, ctx, devices)
        guarded("Throttling", _throttle, ctx)


run_page("GPUs", body)
