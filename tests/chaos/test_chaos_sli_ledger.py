
from chaos.ledger import Ledger, revert_leftovers
from chaos.sli import SliWindow, slo_violation_s, time_to_recover_s
from chaos.target import UrlTarget


def windows(pattern, t0=100.0):
    return [SliWindow(start=t0 + i, end=t0 + i + 1, p99_ms=500 if c == "x" else 10,
                      error_ratio=0, n=5, violating=c == "x") for i, c in enumerate(pattern)]


def test_slo_violation_seconds_counts_from_the_fault():
    w = windows("x..xx.")
    assert slo_violation_s(w) == 3
    assert slo_violation_s(w, since=100.5) == 2.5


def test_time_to_recover():
    w = windows("..xxx..")  # fault at 101.5: violated 102-105, healthy from 105 for 2 windows
    assert time_to_recover_s(w, 101.5, 2) == (3.5, "healthy from 3.5 s after the fault")
    ttr, why = time_to_recover_s(windows("..xxx.x"), 101.5, 2)
    assert ttr is None and "not recovered" in why
    assert time_to_recover_s(windows("...."), 100, 2)[0] == 0.0


def test_ledger_outstanding_tolerates_a_torn_line(tmp_path):
    ledger = Ledger(tmp_path / "l")
    a = ledger.injecting("chaos_helpers:FileFault", {"path": str(tmp_path / "a")}, UrlTarget())
    b = ledger.injecting("chaos_helpers:FileFault", {"path": str(tmp_path / "b")}, UrlTarget())
    ledger.state(b, {"pids": [1]})
    ledger.reverted(a)
    with open(ledger.path, "a") as f:
        f.write('{"op": "revert", "id": "')  # the crash hit mid-write
    out = ledger.outstanding()
    assert [e["id"] for e in out] == [b] and out[0]["state"] == {"pids": [1]}


def test_revert_leftovers_reverts_newest_first_and_reports_failures(tmp_path):
    ledger = Ledger(tmp_path / "l")
    for name in ("a", "b"):
        (tmp_path / name).write_text("on")
        ledger.injecting("chaos_helpers:FileFault", {"path": str(tmp_path / name)}, UrlTarget())
    ledger.injecting("chaos_helpers:BrokenRevertFault", {"path": str(tmp_path / "c")},
                     UrlTarget())
    result = revert_leftovers(ledger, UrlTarget())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert len(result.reverted) == 2 and "revert refused" in result.failed[0]
    assert not result.ok
    assert len(ledger.outstanding()) == 1  # the failed one stays for the next cleanup
