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
    st.vega_lite_chart(*charts.timeline_spec(df, "starts_at", "ends_at", "alertname", "status",
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
    rows = sources.audit_rows(ctx.store)
    if rows.empty:
        st.info("No remediation action has been audited yet.")
        return
    acts = sources.audit_actions(rows)
    counts = acts["outcome"].value_counts()
    c = st.columns(6)
    c[0].metric("Actions", len(acts))
    for col, (label, n) in zip(c[1:], (
            ("Applied", counts.get("applied", 0)),
            ("Verified", int((acts["verified"] == "verified").sum())),
            ("Rolled back", counts.get("rolled_back", 0)),
            ("Failed", counts.get("failed", 0)),
            ("Refused", counts.get("refused", 0))), strict=True):
        col.metric(label, int(n))
    if (acts["outcome"] == "applying").any():
        st.warning(f"{int((acts['outcome'] == 'applying').sum())} action(s) started with no "
                   "outcome recorded (the engine stopped mid-action); remediation reconciles "
                   "them against the fleet on its next start.")
    st.markdown("**Actions** (one per idempotency key; outcome from its `after` row)")
    st.dataframe(acts.assign(time=to_datetime(acts["ts"]))
                 [["time", "execution", "runbook", "step", "target", "change", "outcome",
                   "verified", "result"]], hide_index=True, key="alerts_actions")
    st.markdown("**Audit rows** (every phase: before, after, verify, refused)")
    show = rows.assign(time=to_datetime(rows["ts"].astype(float)),
                       evidence=[json.dumps(e, sort_keys=True) for e in rows["evidence"]])
    st.dataframe(show[["time", "execution", "runbook", "step", "phase", "status", "target",
                       "change", "result", "evidence", "idempotency_key"]],
                 hide_index=True, key="alerts_audit")
    labels = [f"{pd.Timestamp(t):%H:%M:%S} {r}/{s} {ph} on {tg}: {st_}"
              for t, r, s, ph, tg, st_ in zip(show["time"], rows["runbook"], rows["step"],
                                              rows["phase"], rows["target"], rows["status"],
                                              strict=True)]
    i = st.selectbox("Evidence of audit row", range(len(rows)),
                     format_func=lambda k: labels[k], key="alerts_action")
    r = rows.iloc[i]
    c1, c2 = st.columns(2)
    c1.markdown("**Evidence**")
    c1.json(r["evidence"] if isinstance(r["evidence"], (dict, list)) else {})
    c2.markdown("**Outcome**")
    c2.write(f"Phase `{r['phase']}`, status `{r['status']}`, execution `{r['execution']}`: "
             f"{r['result'] or '(no result text)'}")
    c2.json(r["params"] if isinstance(r["params"], (dict, list)) else {})


def body(ctx: PageContext) -> None:
    guarded("Alerts", _alerts, ctx)
    guarded("Silences", _silences, ctx)
    guarded("Outbox", _outbox, ctx)
    guarded("Audit", _audit, ctx)


run_page("Alerts & remediation", body)
