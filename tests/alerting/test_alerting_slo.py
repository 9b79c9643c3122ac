"""SLO burn-rate tiers and error budget over a real store's request chains (synthetic traffic)."""

from __future__ import annotations

import pytest

from warden.alerting.inhibit import SLO_PAGE_MUTES_TICKET, Inhibitor
from warden.alerting.lifecycle import AlertTracker
from warden.alerting.slo import (
    DEFAULT_TIERS,
    SloConfigError,
    SloEvaluator,
    SloSpec,
    burn_rate,
    load_slos,
)
from warden.alerting.sli_chains import StoreChainsSli
from warden.records import RequestChain
from warden.store import Store

NOW = 1_800_000_000.0
DAY = 86400.0
STEP = 30.0  # one request every 30 s


_OPEN: list[Store] = []


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _log(tmp_path, *, error_every: int, incident_s: float = 0.0, slow_every: int = 0):
    store = Store(tmp_path / "slo.db")
    _OPEN.append(store)
    rows = []
    n = int(3 * DAY / STEP)
    for i in range(n):
        ts = NOW - 3 * DAY + i * STEP
        err = i % error_every == 0 or ts >= NOW - incident_s
        lat = 0.5 if slow_every and i % slow_every == 0 else 0.02
        rows.append(RequestChain(f"t{i}", ts, "mlp", "lite" if i % 3 == 0 else "full",
                                 f"r{i % 2}", lat, {}, error=err))
    store.write_chains(rows)
    return StoreChainsSli(store)


AVAIL = SloSpec(name="mlp-availability", model="mlp", kind="availability", objective=0.999)


def test_tiers_match_the_workbook() -> None:
    got = [(t.severity, t.factor, t.long_window_s, t.short_window_s) for t in DEFAULT_TIERS]
    assert got == [("page", 14.4, 3600, 300), ("page", 6.0, 21600, 1800),
                   ("ticket", 3.0, 86400, 7200), ("ticket", 1.0, 259200, 21600)]


def test_burn_rate() -> None:
    assert burn_rate(999, 1000, 0.999) == pytest.approx(1.0)
    assert burn_rate(0, 0, 0.999) == 0.0
    assert burn_rate(900, 1000, 0.99) == pytest.approx(10.0)


def test_quiet_service_fires_nothing(tmp_path) -> None:
    ev = SloEvaluator([AVAIL], _log(tmp_path, error_every=2000))
    assert ev.conditions(NOW) == {}
    b = ev.budget(AVAIL, NOW)
    n = int(3 * DAY / STEP)
    errors = len(range(0, n, 2000))  # one error every 2000 requests: 5 of 8640
    assert (b.total, b.good) == (n, n - errors)
    assert b.budget_remaining == pytest.approx(1 - (errors / n) / 0.001)


def test_fast_burn_pages_and_resets(tmp_path) -> None:
    ev = SloEvaluator([AVAIL], _log(tmp_path, error_every=2000, incident_s=600))
    res = {r.tier.name: r for r in ev.tiers_for(AVAIL, NOW)}
    assert res["fast"].firing and res["fast"].short_burn == pytest.approx(1000.0)
    conds = ev.conditions(NOW)
    sev = sorted(dict(k)["severity"] for k in conds)
    assert sev == ["page", "ticket"]  # one page, though the 6x tier fires as well
    page = next(k for k in conds if dict(k)["severity"] == "page")
    assert "fast tier" in dict(conds[page])["summary"]
    # The page inhibits the ticket for the same SLO (default rule).
    tr = AlertTracker()
    tr.evaluate(NOW, conds)
    alerts = tr.firing()
    inh = Inhibitor([SLO_PAGE_MUTES_TICKET], lambda: alerts)
    muted = [dict(a.labels)["severity"] for a in alerts if inh.muted_by(a)]
    assert muted == ["ticket"]
    # 15 minutes later (no more errors), the 5 m window is clean: the fast tier resets, while
    # the 6x tier (30 m short window) still holds, as the workbook intends.
    later = {r.tier.name: r.firing for r in ev.tiers_for(AVAIL, NOW + 900)}
    assert later == {"fast": False, "medium": True, "slow": True, "slowest": True}


def test_slow_burn_opens_a_ticket_not_a_page(tmp_path) -> None:
    ev = SloEvaluator([AVAIL], _log(tmp_path, error_every=250))
    conds = ev.conditions(NOW)
    assert sorted(dict(k)["severity"] for k in conds) == ["ticket"]
    n = int(3 * DAY / STEP)
    errors = len(range(0, n, 250))  # 0.4 %: 4x the 0.1 % budget
    assert ev.budget(AVAIL, NOW).budget_remaining == pytest.approx(1 - (errors / n) / 0.001)
    # And it goes through the alert lifecycle like any other condition.
    tr = AlertTracker(for_s=0)
    (t,) = tr.evaluate(NOW, conds)
    assert t.alert.name == "SloBudgetBurn" and dict(t.alert.labels)["slo"] == AVAIL.name


def test_latency_slo_counts_slow_requests(tmp_path) -> None:
    lat = SloSpec(name="mlp-p99", model="mlp", kind="latency", objective=0.99,
                  latency_threshold_s=0.1)
    log = _log(tmp_path, error_every=10**9, slow_every=20)  # 5 % slow
    good, total = log.counts(lat, NOW - DAY, NOW)
    assert 1 - good / total == pytest.approx(0.05, abs=0.001)
    assert sorted(dict(k)["severity"] for k in SloEvaluator([lat], log).conditions(NOW)) == [
        "ticket"]  # 5x: above 3x and 1x, under 6x


def test_load_slos_names_the_bad_key() -> None:
    ok = load_slos([{"name": "a", "model": "mlp", "kind": "latency", "objective": 0.99,
                     "latency_threshold_s": 0.25}])
    assert ok[0].period_s == 30 * DAY
    for bad, where in (
        ([{"name": "a", "model": "m", "kind": "latency", "objective": 0.99}], "slos[0]"),
        ([{"name": "a", "model": "m", "kind": "availability", "objective": 1.5}],
         "slos[0].objective"),
        ([{"name": "a", "model": "m", "kind": "avail", "objective": 0.9}], "slos[0].kind"),
        ([{"name": "a", "model": "m", "kind": "availability", "objective": 0.9, "x": 1}],
         "slos[0].x"),
        ({"name": "a"}, "slos:"),
    ):
        with pytest.raises(SloConfigError, match=__import__("re").escape(where)):
            load_slos(bad)


def test_configured_tiers_replace_the_workbook_ones(tmp_path) -> None:
    """A lab compresses the windows (60 s / 10 s): a one-minute incident pages, where the
    workbook's 1 h window would dilute it below 14.4x."""
    from warden.alerting.config import AlertingConfigError, load_alerting_config

    slo = SloSpec(name="mlp-avail", model="mlp", kind="availability", objective=0.99)
    cfg = load_alerting_config({"slos": [slo.model_dump()], "slo_tiers": [
        {"name": "fast", "severity": "page", "factor": 14.4, "long_window_s": 60,
         "short_window_s": 10}]})
    tiers = cfg.burn_rate_tiers()
    assert [(t.name, t.long_window_s, t.short_window_s) for t in tiers] == [("fast", 60, 10)]
    assert load_alerting_config({}).burn_rate_tiers() == DEFAULT_TIERS
    store = Store(tmp_path / "lab.db")
    _OPEN.append(store)
    ok = [RequestChain(f"ok{i}", NOW - 3600 + i * 0.5, "mlp", "full", "r0", 0.02, {})
          for i in range(7080)]
    bad = [RequestChain(f"bad{i}", NOW - 60 + i * 0.5, "mlp", "full", "r0", 0.02, {}, error=True)
           for i in range(120)]
    store.write_chains(ok + bad)
    src = StoreChainsSli(store)
    def pages(ev: SloEvaluator) -> list[str]:
        return [dict(k)["severity"] for k in ev.conditions(NOW) if dict(k)["severity"] == "page"]

    assert pages(SloEvaluator([slo], src, tiers=tiers)) == ["page"]  # 60 s: half bad, 50x
    assert pages(SloEvaluator([slo], src)) == []  # 1 h: 120 of 7200 bad is 1.7x
    with pytest.raises(AlertingConfigError, match="slo_tiers.0: Value error, short_window_s"):
        load_alerting_config({"slo_tiers": [{"name": "f", "severity": "page", "factor": 2,
                                             "long_window_s": 5, "short_window_s": 10}]})
