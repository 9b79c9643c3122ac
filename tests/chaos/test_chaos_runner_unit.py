"""The runner's order and guarantees, on a real file fault and a real store (no fleet)."""

import json
import signal
import threading
import time

import pytest

from chaos.errors import ExperimentError
from chaos.experiment import parse_experiment
from chaos.journal import Journal
from chaos.ledger import Ledger
from chaos.report import format_table, format_timeline, plot_timeline
from chaos.runner import Runner
from chaos.target import UrlTarget
from chaos_helpers import ScriptedEngine
from warden.store import Store


def file_experiment(flag, **over):
    data = {
        "title": "file fault",
        "steady_state_hypothesis": {"probes": [
            {"name": "flag absent", "provider": "chaos_helpers:file_absent",
             "arguments": {"path": str(flag)}, "tolerance": True}]},
        "method": [{"type": "fault", "name": "flag", "provider": "chaos_helpers:FileFault",
                    "arguments": {"path": str(flag)}}],
        "watch": {"duration_s": 0.3, "poll_s": 0.05},
        "expectations": {"hypothesis_during": "breaks"},
    }
    data.update(over)
    return parse_experiment(data, "file.yaml")


def runner(tmp_path, **kw):
    return Runner(UrlTarget(), journal_dir=tmp_path / "j", progress=lambda m: None, **kw)


def test_hypothesis_breaks_during_and_is_restored_after(tmp_path):
    flag = tmp_path / "flag"
    j = runner(tmp_path).run(file_experiment(flag))
    assert j.verdict == "passed", j.reasons
    assert [h.phase for h in j.hypotheses] == ["before", "during", "after"]
    assert [h.ok for h in j.hypotheses] == [True, False, True]
    kinds = [e.kind for e in j.timeline]
    assert kinds.index("fault_injected") < kinds.index("hypothesis_during") \
        < kinds.index("fault_reverted") < kinds.index("hypothesis_after")
    assert not flag.exists()
    saved = Journal.load(j.path)
    assert saved.verdict == "passed" and saved.faults[0]["reverted_at"] is not None
    assert Ledger(tmp_path / "j" / "faults.ledger").outstanding() == []


def test_steady_state_not_met_before_injects_nothing(tmp_path):
    flag = tmp_path / "flag"
    flag.write_text("already")
    j = runner(tmp_path).run(file_experiment(flag))
    assert j.verdict == "aborted"
    assert "did not hold before" in j.reasons[0] and "flag absent" in j.reasons[0]
    assert flag.read_text() == "already"  # the fault never ran, nothing was reverted
    assert any("retrying" in n for n in j.notes)
    assert not j.faults


def test_expectation_failure_says_which(tmp_path):
    flag = tmp_path / "flag"
    exp = file_experiment(flag, expectations={"hypothesis_during": "holds"})
    j = runner(tmp_path).run(exp)
    assert j.verdict == "failed"
    assert any("steady state holds during the fault" in r and "flag absent" in r
               for r in j.reasons)
    assert not flag.exists()


def test_a_blip_during_a_steady_state_that_holds_is_retried(tmp_path):
    """A runbook restored the steady state; one stalled probe while the fault is still in
    must not fail the run. An experiment expecting it to break gets no retry."""
    flag, blip = tmp_path / "flag", tmp_path / "blip"
    data = {"title": "blip", "steady_state_hypothesis": {"retries": 2, "retry_delay_s": 0,
            "probes": [{"name": "no blip", "provider": "chaos_helpers:absent_or_blip",
                        "arguments": {"path": str(flag), "blips": str(blip)},
                        "tolerance": True}]},
            "method": [{"type": "fault", "name": "blip", "provider": "chaos_helpers:FileFault",
                        "arguments": {"path": str(blip)}}],
            "watch": {"duration_s": 0.1, "poll_s": 0.05},
            "expectations": {"hypothesis_during": "holds"}}
    j = runner(tmp_path).run(parse_experiment(data, "blip.yaml"))
    assert j.verdict == "passed", j.reasons
    assert any("steady state during: attempt 1 failed" in n for n in j.notes)
    data["expectations"] = {"hypothesis_during": "breaks"}
    j = runner(tmp_path).run(parse_experiment(data, "blip.yaml"))
    assert j.verdict == "passed", j.reasons  # the first look saw it break
    assert not any("steady state during" in n for n in j.notes)


def test_requires_skips_with_reason(tmp_path):
    j = runner(tmp_path).run(file_experiment(tmp_path / "f", requires=["detection"]))
    assert j.verdict == "skipped" and "requires detection" in j.reasons[0]
    j2 = runner(tmp_path, capabilities={"detection"}).run(
        file_experiment(tmp_path / "f", requires=["detection"]))
    assert j2.verdict == "passed"


def test_failed_revert_is_reported_and_left_in_the_ledger(tmp_path):
    flag = tmp_path / "flag"
    exp = file_experiment(flag, method=[{"type": "fault", "provider":
                                         "chaos_helpers:BrokenRevertFault",
                                         "arguments": {"path": str(flag)}}])
    j = runner(tmp_path).run(exp)
    assert j.verdict == "failed"
    assert any("could not revert" in r and "revert refused" in r for r in j.reasons)
    assert len(Ledger(tmp_path / "j" / "faults.ledger").outstanding()) == 1


def test_sigterm_mid_watch_reverts_and_marks_interrupted(tmp_path):
    flag = tmp_path / "flag"
    exp = file_experiment(flag, watch={"duration_s": 30, "poll_s": 0.05})
    threading.Timer(0.5, lambda: signal.raise_signal(signal.SIGTERM)).start()
    t0 = time.monotonic()
    j = runner(tmp_path).run(exp)
    assert time.monotonic() - t0 < 10
    assert j.verdict == "interrupted" and "SIGTERM" in j.reasons[0]
    assert not flag.exists()
    assert j.hypothesis("after").ok
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_leftovers_from_a_crashed_run_are_reverted_at_start(tmp_path):
    flag = tmp_path / "left"
    ledger = Ledger(tmp_path / "j" / "faults.ledger")
    ledger.injecting("chaos_helpers:FileFault", {"path": str(flag)}, UrlTarget())
    flag.write_text("on")
    j = runner(tmp_path).run(file_experiment(tmp_path / "flag"))
    assert not flag.exists()
    assert any("reverted a leftover fault" in n for n in j.notes)
    assert j.verdict == "passed"


def test_validation_error_raises_before_touching(tmp_path):
    flag = tmp_path / "flag"
    exp = file_experiment(flag, method=[
        {"type": "fault", "provider": "chaos_helpers:FileFault", "arguments": {"path": str(flag)}},
        {"type": "fault", "provider": "chaos_helpers:FileFault",
         "arguments": {"path": str(flag), "value": ""}}])
    with pytest.raises(ExperimentError, match=r"method\[1\].*value must not be empty"):
        runner(tmp_path).run(exp)
    assert not flag.exists()


def _closed_loop_experiment(flag, status="verified"):
    return file_experiment(flag, requires=["detection", "remediation"], expectations={
        "hypothesis_during": "any", "alerts": ["ReplicaP99Drift"],
        "actions": [{"runbook": "replica-p99-drift", "status": status}],
        "max_time_to_detect_s": 5}, watch={"duration_s": 5, "poll_s": 0.05})


def test_closed_loop_expectations_read_from_the_store(tmp_path):
    flag = tmp_path / "flag"
    store = Store(tmp_path / "w.db")
    with ScriptedEngine(store, flag, outcome="verified"):
        j = runner(tmp_path, store=store, capabilities={"detection", "remediation"}).run(
            _closed_loop_experiment(flag))
    assert j.verdict == "passed", j.reasons
    assert 0 < j.time_to_detect_s < 5 and j.time_to_act_s >= j.time_to_detect_s
    assert j.ended_at - j.started_at < 4  # the watch ended once everything was seen
    assert [e.kind for e in j.timeline].count("first_alert") == 1


def test_broken_runbook_fails_its_experiment_with_the_reason(tmp_path):
    """A runbook whose verify step never passes ends rolled back: the suite goes red."""
    flag = tmp_path / "flag"
    store = Store(tmp_path / "w.db")
    why = "verify failed: p99_latency_seconds 0.41 not < 0.25 within 30 s"
    exp = _closed_loop_experiment(flag)
    exp.watch.duration_s = 1.5
    with ScriptedEngine(store, flag, outcome="rolled_back", result=why):
        j = runner(tmp_path, store=store, capabilities={"detection", "remediation"}).run(exp)
    assert j.verdict == "failed"
    reason = "; ".join(j.reasons)
    assert "action replica-p99-drift: ran but ended rolled_back (expected verified)" in reason
    assert why in reason


def test_missing_tables_are_noted_not_fatal(tmp_path):
    flag = tmp_path / "flag"
    store = Store(tmp_path / "w.db")
    exp = _closed_loop_experiment(flag)
    exp.watch.duration_s = 0.3
    j = runner(tmp_path, store=store, capabilities={"detection", "remediation"}).run(exp)
    assert j.verdict == "failed"
    assert "no alerts table in the store" in j.notes
    assert "no action_audit table in the store" in j.notes
    assert any("alert ReplicaP99Drift: never fired" in r for r in j.reasons)


def test_outbox_alerts_count_as_observed(tmp_path):
    from chaos.observed import StoreObserver

    store = Store(tmp_path / "w.db")
    from warden.alerting.outbox import Outbox  # creates its table as alerting does

    Outbox(store._conn)
    body = json.dumps({"alerts": [{"labels": {"alertname": "GpuThrottling", "replica": "r0"},
                                   "status": "firing"}]})
    store.query("SELECT 1")
    with store.transaction() as conn:
        conn.execute("INSERT INTO alert_outbox (idempotency_key, target, group_key, status, body,"
                     " created_at, next_attempt_at) VALUES ('k', 't', 'g', 'firing', ?, ?, 0)",
                     (body, time.time()))
    alerts = StoreObserver(store).alerts_since(time.time() - 5)
    assert [(a.alertname, a.source, a.labels["replica"]) for a in alerts] == [
        ("GpuThrottling", "alert_outbox", "r0")]


def test_report_table_timeline_and_png(tmp_path):
    j = runner(tmp_path).run(file_experiment(tmp_path / "flag"))
    table = format_table([j, j], extra=["remediation on", "remediation off"])
    assert "remediation off" in table and "file fault" in table and "passed" in table
    assert "fault_injected" in format_timeline(j)
    png = plot_timeline(j, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_crashing_fault_is_journalled_and_the_others_reverted(tmp_path):
    flag = tmp_path / "flag"
    exp = file_experiment(flag, method=[
        {"type": "fault", "provider": "chaos_helpers:FileFault", "arguments": {"path": str(flag)}},
        {"type": "fault", "provider": "chaos_helpers:CrashingFault",
         "arguments": {"path": str(tmp_path / "other")}}])
    j = runner(tmp_path).run(exp)
    assert j.verdict == "failed"
    assert any("runner error: ZeroDivisionError" in r for r in j.reasons)
    assert not flag.exists() and Journal.load(j.path).verdict == "failed"


def test_sli_from_the_stores_request_chains(tmp_path):
    """source: store measures the traffic the engine saw: here chains slowed while the fault is
    in, written by a thread as the trace pipeline would."""
    from warden.records import RequestChain

    flag = tmp_path / "flag"
    store = Store(tmp_path / "w.db")
    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            slow = flag.exists()
            store.write_chains([RequestChain(trace_id=f"t{i}", ts=time.time(), model="synth",
                                             variant="full", replica="r0",
                                             latency_s=0.4 if slow else 0.01, stages={})])
            i += 1
            time.sleep(0.02)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        exp = file_experiment(flag, sli={"source": "store", "via": "r0", "threshold_ms": 100,
                                         "window_s": 0.25},
                              watch={"duration_s": 1.0, "poll_s": 0.05},
                              expectations={"hypothesis_during": "breaks",
                                            "min_slo_violation_s": 0.5})
        j = runner(tmp_path, store=store).run(exp)
    finally:
        stop.set()
        thread.join()
    assert j.verdict == "passed", j.reasons
    assert 0.5 <= j.slo_violation_s <= 3
    assert j.time_to_recover_s is not None and any(not w.violating for w in j.sli)
    with pytest.raises(ExperimentError, match="sli.source is 'store'"):
        runner(tmp_path).run(exp)


def test_an_alert_no_detection_rule_raises_skips_before_touching_anything(tmp_path):
    flag = tmp_path / "flag"
    exp = file_experiment(flag, requires=["detection"],
                          expectations={"alerts": ["ReplicaHung", "ReplicaP99Drift"]})
    r = runner(tmp_path, capabilities={"detection"}, detectable={"ReplicaP99Drift"})
    assert r.skip_reasons(exp) == [
        "expects alert ReplicaHung, which this engine's detection has no rule to raise "
        "(it raises: ReplicaP99Drift)"]
    j = r.run(exp)
    assert j.verdict == "skipped" and not flag.exists() and not j.faults
    assert Journal.load(j.path).reasons == r.skip_reasons(exp)
    # an engine that does not say what it detects (None) skips nothing for it
    assert runner(tmp_path, capabilities={"detection"}).skip_reasons(exp) == []
