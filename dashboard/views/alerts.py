"""Alerts and remediation: alert timeline, outbox delivery state, the audit of actions."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import charts, sources
from dashboard.ui import PageContext, guarded, run_page, to_datetime


def _alerts(ctx: PageContext) -> None:
    st.subheader("Alert timeline")
    df = sources.alert_timeline(ctx.store, ctx.latest)
    if df.empty:
        st.info("No alert has been notified yet.")
        return
    c = st.columns(3)
    c[0].metric("Alerts", len(df))
    c[1].metric("Firing", int((df["status"] == "firing").sum()))
    c[2].metric("Resolved", int((df["status"] == "resolved").sum()))
    st.plotly_chart(charts.timeline_figure(df, "starts_at", "ends_at", "alertname", "status",
                                           "Alerts (firing ones run to the newest data)",
                                           hover=("alertname", "labels", "summary")),
                    key="alerts_timeline")
    st.dataframe(df.assign(starts=to_datetime(df["starts_at"]), ends=to_datetime(df["ends_at"]))
                 [["alertname", "severity", "status", "starts", "ends", "summary", "labels"]],
                 hide_index=True, key="alerts_table")


def _silences(ctx: PageContext) -> None:
    df = sources.silences(ctx.store, ctx.latest)
    if df.empty:
        st.caption("No active silences.")
        return
    st.markdown(f"**Active silences: {len(df)}**")
    st.dataframe(df.assign(starts=to_datetime(df["starts_at"]), ends=to_datetime(df["ends_at"]))
                 [["matchers", "starts", "ends", "created_by", "comment"]],
                 hide_index=True, key="alerts_silences")


def _outbox(ctx: PageContext) -> None:
    st.subheader("Notification outbox")
    df = sources.outbox_rows(ctx.store)
    if df.empty:
        st.info("The outbox is empty.")
        return
    counts = df["state"].value_counts()
    c = st.columns(3)
    for col, state in zip(c, ("pending", "delivered", "dead"), strict=True):
        col.metric(f"Outbox {state}", int(counts.get(state, 0)))
    show = df.assign(created=to_datetime(df["created_at"]),
                     delivered=to_datetime(df["delivered_at"].astype(float)))
    st.dataframe(show[["id", "created", "target", "status", "state", "attempts", "last_status",
                       "last_error", "delivered", "group_key"]],
                 hide_index=True, key="alerts_outbox")


def _audit(ctx: PageContext) -> None:
    st.subheader("Remediation audit")
    df = sources.audit_rows(ctx.store)
    if df.empty:
        st.info("No remediation action has been audited yet.")
        return
    counts = df["status"].value_counts()
    c = st.columns(4)
    c[0].metric("Actions", len(df))
    for col, status in zip(c[1:], ("verified", "rolled_back", "failed"), strict=True):
        col.metric(status.replace("_", " ").capitalize(), int(counts.get(status, 0)))
    show = df.assign(time=to_datetime(df["ts"].astype(float)),
                     params=[json.dumps(p, sort_keys=True) for p in df["params"]],
                     evidence=[json.dumps(e, sort_keys=True) for e in df["evidence"]])
    st.dataframe(show[["time", "runbook", "step", "target", "status", "result", "params",
                       "evidence", "idempotency_key"]], hide_index=True, key="alerts_audit")
    labels = [f"{pd.Timestamp(t):%H:%M:%S} {r}/{s} on {tg}: {st_}" for t, r, s, tg, st_ in
              zip(show["time"], df["runbook"], df["step"], df["target"], df["status"],
                  strict=True)]
    i = st.selectbox("Evidence of action", range(len(df)), format_func=lambda k: labels[k],
                     key="alerts_action")
    c1, c2 = st.columns(2)
    c1.markdown("**Evidence**")
    c1.json(df["evidence"].iloc[i] if isinstance(df["evidence"].iloc[i], (dict, list)) else {})
    c2.markdown("**Outcome**")
    c2.write(f"Status `{df['status'].iloc[i]}`: {df['result'].iloc[i] or '(no result text)'}")
    c2.json(df["params"].iloc[i] if isinstance(df["params"].iloc[i], (dict, list)) else {})


def body(ctx: PageContext) -> None:
    guarded("Alerts", _alerts, ctx)
    guarded("Silences", _silences, ctx)
    guarded("Outbox", _outbox, ctx)
    guarded("Audit", _audit, ctx)


run_page("Alerts & remediation", body)
