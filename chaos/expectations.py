"""Check an experiment's expectations against what its journal recorded.

Called during the watch (``final=False``: only "has it happened yet?") and once at the end,
when it also fills the journal's summary numbers. Every failed expectation says what was seen
instead, e.g. "runbook reroute ran but ended rolled_back (expected verified): verify failed",
because a red test must tell the reader which part of the loop broke.
"""

from __future__ import annotations

import math

from chaos.experiment import Experiment
from chaos.journal import ExpectationResult, Journal
from chaos.sli import slo_violation_s, time_to_recover_s

__all__ = ["evaluate"]


def _alert_results(exp: Experiment, j: Journal) -> list[ExpectationResult]:
    out = []
    seen = sorted({a["alertname"] for a in j.alerts})
    for want in exp.expectations.alerts:
        match = [a for a in j.alerts if a["alertname"] == want.alertname
                 and all(a["labels"].get(k) == v for k, v in want.labels.items())]
        detail = (f"fired {match[0]['ts'] - (j.fault_at or j.started_at):.1f} s after the fault"
                  if match else f"never fired (seen: {seen or 'none'}"
                  + (f"; {'; '.join(n for n in j.notes if 'table' in n)}" if j.notes else "")
                  + ")")
        out.append(ExpectationResult(name=f"alert {want.alertname}", ok=bool(match),
                                     detail=detail))
    return out


def _action_results(exp: Experiment, j: Journal) -> list[ExpectationResult]:
    out = []
    for want in exp.expectations.actions:
        label = want.runbook + (f":{want.step}" if want.step else "")
        ran = [a for a in j.actions if a["runbook"] == want.runbook
               and (want.step is None or a["step"] == want.step)]
        ok = any(want.status is None or a["status"] == want.status for a in ran)
        if ok:
            detail = f"ran ({ran[-1]['status']})"
        elif ran:
            last = ran[-1]
            detail = (f"ran but ended {last['status']} (expected {want.status})"
                      + (f": {last['result']}" if last.get("result") else ""))
        else:
            runbooks = sorted({a['runbook'] for a in j.actions})
            detail = f"never ran (actions seen: {runbooks or 'none'})"
        out.append(ExpectationResult(name=f"action {label}", ok=ok, detail=detail))
    return out


def _summarise(exp: Experiment, j: Journal) -> None:
    t0 = j.fault_at
    if t0 is None:
        return
    if j.alerts:
        wanted = {a.alertname for a in exp.expectations.alerts}
        hits = [a["ts"] for a in j.alerts if not wanted or a["alertname"] in wanted]
        j.time_to_detect_s = round(min(hits) - t0, 3) if hits else None
    if j.actions:
        j.time_to_act_s = round(min(a["ts"] for a in j.actions) - t0, 3)
    if j.sli and exp.sli:
        j.slo_violation_s = round(slo_violation_s(j.sli, since=t0), 3)
        ttr, why = time_to_recover_s(j.sli, t0, exp.sli.recover_windows)
        j.time_to_recover_s = None if ttr is None else round(ttr, 3)
        j.notes.append(f"recovery: {why}")
        if ttr is not None and ttr > 0:
            j.event("slo_recovered", why, t0 + ttr)


def evaluate(exp: Experiment, j: Journal, *, final: bool) -> list[ExpectationResult]:
    e = exp.expectations
    if final:
        _summarise(exp, j)
    out = _alert_results(exp, j) + _action_results(exp, j)
    if not final:
        return out
    if e.max_time_to_detect_s is not None:
        ttd = j.time_to_detect_s
        out.append(ExpectationResult(
            name=f"time to detect <= {e.max_time_to_detect_s:g} s",
            ok=ttd is not None and ttd <= e.max_time_to_detect_s,
            detail="nothing detected" if ttd is None else f"{ttd:.1f} s"))
    if e.max_time_to_recover_s is not None:
        ttr = j.time_to_recover_s
        out.append(ExpectationResult(
            name=f"time to recover <= {e.max_time_to_recover_s:g} s",
            ok=ttr is not None and ttr <= e.max_time_to_recover_s,
            detail="SLO never recovered" if ttr is None else f"{ttr:.1f} s"))
    if e.max_slo_violation_s is not None or e.min_slo_violation_s is not None:
        if not j.sli:
            out.append(ExpectationResult(name="SLO violation", ok=False,
                                         detail="no SLI measured (experiment has no sli:)"))
        else:
            v = j.slo_violation_s
            if e.max_slo_violation_s is not None:
                out.append(ExpectationResult(
                    name=f"SLO violation <= {e.max_slo_violation_s:g} s",
                    ok=v <= e.max_slo_violation_s, detail=f"{v:.1f} s"))
            if e.min_slo_violation_s is not None:
                out.append(ExpectationResult(
                    name=f"SLO violation >= {e.min_slo_violation_s:g} s (the fault bites)",
                    ok=v >= e.min_slo_violation_s, detail=f"{v:.1f} s"))
    during = j.hypothesis("during")
    if during is not None and e.hypothesis_during != "any":
        want_ok = e.hypothesis_during == "holds"
        out.append(ExpectationResult(
            name=f"steady state {e.hypothesis_during} during the fault",
            ok=during.ok == want_ok,
            detail="held" if during.ok else f"broken: {during.failures()}"))
    after = j.hypothesis("after")
    if e.hypothesis_after == "holds" and j.fault_at is not None:
        out.append(ExpectationResult(
            name="steady state restored after rollback",
            ok=after is not None and after.ok,
            detail="not checked" if after is None else
            ("held" if after.ok else f"broken: {after.failures()}")))
    return [r for r in out if not (isinstance(r.detail, float) and math.isnan(r.detail))]
