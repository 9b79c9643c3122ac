"""Chaos: every experiment's journal as a table, and one experiment's timeline."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, sources
from dashboard.ui import PageContext, run_page, to_datetime


def body(ctx: PageContext) -> None:
    j = sources.load_journals(ctx.settings.chaos_dir)
    for msg in j.skipped:
        st.warning(f"Skipped a journal that could not be read: {msg}")
    if j.experiments.empty:
        st.info(f"No chaos journals in {ctx.settings.chaos_dir} yet. Run an experiment "
                "(`warden chaos run ...`) to create one.")
        return
    exps = j.experiments
    c = st.columns(3)
    c[0].metric("Experiments", len(exps))
    c[1].metric("Passed", int(exps["verdict"].str.lower().isin(["passed", "pass", "ok"]).sum()))
    c[2].metric("SLO violation (s, total)", f"{exps['slo_violation_s'].sum():.1f}")
    st.dataframe(exps.assign(started=to_datetime(exps["started_at"]),
                             ended=to_datetime(exps["ended_at"]))
                 [["title", "verdict", "started", "ended", "time_to_detect_s",
                   "time_to_recover_s", "slo_violation_s", "journal"]],
                 hide_index=True, key="chaos_experiments")
    pick = st.selectbox("Journal", list(exps["journal"]), key="chaos_journal",
                        format_func=lambda f: f"{exps.loc[exps['journal'] == f, 'title'].iloc[0]}"
                                              f" ({f})")
    ev = j.events[j.events["journal"] == pick]
    st.subheader("Timeline")
    gantt = charts.timeline_spec(
        exps.dropna(subset=["started_at", "ended_at"]), "started_at", "ended_at", "title",
        "verdict", "Experiments", hover=("title", "verdict", "slo_violation_s"))
    if ev.empty:
        st.vega_lite_chart(*gantt, key="chaos_timeline")
        st.info("This journal has no timeline events.")
        return
    ev = ev.assign(time=to_datetime(ev["ts"]))
    # the experiments and the picked journal's events in one chart element: each element costs
    # the browser its own Vega runtime
    st.vega_lite_chart(*charts.vconcat_spec([gantt, charts.events_spec(ev, "Events")]),
                       key="chaos_timeline")
    st.dataframe(ev[["time", "kind", "message"]], hide_index=True, key="chaos_events")

run_page("Chaos", body)
