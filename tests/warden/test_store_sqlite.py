"""The store: writes, readers, retention, batching, and a reader in another process."""

from __future__ import annotations

import math
import multiprocessing as mp
import sqlite3
import time

import pytest

from warden.records import Anomaly, GpuReading, RequestChain, Sample, Span, freeze_labels
from warden.store import ReadOnlyStoreError, Store, StoreError
from warden.store_writer import StoreWriter


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _s(name: str, ts: float, value: float, **labels: str) -> Sample:
    return Sample(name, freeze_labels(labels), ts, value)


def _gpu(ts: float, device: str = "sim0") -> GpuReading:
    return GpuReading(
        ts=ts, device=device, simulated=True, temperature_c=70.0, power_w=200.0,
        power_limit_w=300.0, sm_clock_mhz=1400.0, sm_clock_max_mhz=1410.0, mem_clock_mhz=1200.0,
        utilization=0.5, memory_used_bytes=1e9, memory_total_bytes=8e9,
        throttle_reasons=("hw_slowdown",), replica="r0",
    )


@pytest.fixture
def store(tmp_path):
    clock = FakeClock()
    with Store(tmp_path / "w.db", clock=clock) as s:
        yield s


def test_series_subset_match_and_time_range(store: Store) -> None:
    store.write_samples([
        _s("rps_per_second", 1.0, 10.0, replica="r0", model="mlp"),
        _s("rps_per_second", 2.0, 11.0, replica="r0", model="mlp"),
        _s("rps_per_second", 2.0, 20.0, replica="r1", model="mlp"),
        _s("rps_per_second", 3.0, 30.0, replica="r1", model="synth"),
        _s("other_total", 2.0, 1.0, replica="r0"),
    ])
    df = store.series("rps_per_second", {"model": "mlp"})
    assert list(df["value"]) == [10.0, 11.0, 20.0]
    assert list(df["replica"]) == ["r0", "r0", "r1"]
    df = store.series("rps_per_second", {"replica": "r1"}, start=2.5)
    assert list(df["value"]) == [30.0]
    df = store.series("rps_per_second", start=1.0, end=2.0)  # end is exclusive
    assert list(df["ts"]) == [1.0]
    assert store.series("missing_total").empty
    assert list(store.series("missing_total").columns)[:2] == ["ts", "value"]


def test_nan_rejected_and_counted_and_duplicate_ts_replaces(store: Store) -> None:
    n = store.write_samples([_s("x_seconds", 1.0, math.nan), _s("x_seconds", 1.0, 1.0),
                             _s("x_seconds", 1.0, 2.0)])
    assert n == 2
    assert store.rejected_samples == 1
    assert list(store.series("x_seconds")["value"]) == [2.0]


def test_dict_labels_are_frozen(store: Store) -> None:
    store.write_samples([Sample("d_total", {"b": "2", "a": "1"}, 1.0, 1.0)])  # type: ignore[arg-type]
    store.write_samples([_s("d_total", 2.0, 2.0, a="1", b="2")])
    assert len(store.list_series("d_total")) == 1 and len(store.series("d_total")) == 2


def test_quantiles_per_window(store: Store) -> None:
    store.write_samples([_s("lat_seconds", float(i), float(i), replica="r0") for i in range(20)])
    df = store.quantiles("lat_seconds", q=(0.5, 0.99), window_s=10.0)
    assert list(df["window_start"]) == [0.0, 10.0]
    assert list(df["count"]) == [10, 10]
    assert df["p50"].tolist() == [4.5, 14.5]
    assert df["p99"].iloc[1] == pytest.approx(18.91)


def _chain(tid: str, ts: float, lat: float, replica: str = "r0", error: bool = False,
           model: str = "mlp") -> RequestChain:
    return RequestChain(
        trace_id=tid, ts=ts, model=model, variant="full", replica=replica, latency_s=lat,
        stages={"client": lat, "queue": lat / 4, "compute_infer": lat / 2}, error=error,
        gpu=_gpu(ts), span_count=7,
    )


def test_chains_roundtrip_slowest_and_quantiles(store: Store) -> None:
    chains = [_chain(f"t{i}", float(i), 0.01 * (i + 1), replica=f"r{i % 2}") for i in range(10)]
    chains.append(_chain("terr", 5.5, 0.5, error=True, model="synth"))
    assert store.write_chains(chains) == 11
    back = store.read_chain("t3")
    assert back == chains[3]
    assert store.read_chain("nope") is None
    row = store.chain("terr")
    assert len(row) == 1 and bool(row["error"].iloc[0]) and row["queue"].iloc[0] == 0.125
    assert math.isnan(row["router"].iloc[0])
    slow = store.slowest_chains(limit=3)
    assert list(slow["trace_id"]) == ["terr", "t9", "t8"]
    assert list(store.slowest_chains(model="mlp", limit=1)["trace_id"]) == ["t9"]
    assert len(store.chains(error=True)) == 1
    assert list(store.chains(start=2.0, end=4.0)["trace_id"]) == ["t2", "t3"]
    q = store.chain_quantiles(window_s=100.0, model="mlp", stage="queue")
    assert list(q["replica"]) == ["r0", "r1"] and list(q["count"]) == [5, 5]
    assert q["p50"].iloc[0] == pytest.approx(0.0125)
    with pytest.raises(ValueError):
        store.chain_quantiles(stage="warp_drive")


def test_spans_gpu_anomalies(store: Store) -> None:
    store.write_spans([Span("t1", "s1", "", "InferRequest", "r0", 10**9, 2 * 10**9,
                            {"k": 1}, (("QUEUE_START", 15 * 10**8),), False)])
    sp = store.spans("t1")
    assert sp["events"].iloc[0] == [["QUEUE_START", 15 * 10**8]]
    assert sp["attributes"].iloc[0] == {"k": 1}
    store.write_gpu_readings([_gpu(1.0), _gpu(2.0, "sim1")])
    g = store.gpu_readings(device="sim1")
    assert len(g) == 1 and g["simulated"].iloc[0] and g["throttle_reasons"].iloc[0] == ["hw_slowdown"]
    store.write_anomalies([Anomaly(3.0, "p99_drift", "lat_seconds", freeze_labels({"r": "0"}),
                                   0.9, 0.1, 0.4, {"why": "drift"})])
    a = store.anomalies(detector="p99_drift")
    assert a["evidence"].iloc[0] == {"why": "drift"} and a["labels"].iloc[0] == {"r": "0"}


def test_prune_by_age_including_registered_tables(store: Store) -> None:
    clock = store.clock
    store.ensure_table(
        "alerts_test", "CREATE TABLE IF NOT EXISTS alerts_test (ts REAL, name TEXT)", ts_column="ts"
    )
    store.insert_rows("alerts_test", ["ts", "name"], [(10.0, "old"), (995.0, "new")])
    store.write_samples([_s("a_total", 10.0, 1.0, r="old"), _s("a_total", 995.0, 1.0, r="new")])
    store.write_chains([_chain("old", 10.0, 0.1), _chain("new", 995.0, 0.1)])
    store.write_gpu_readings([_gpu(10.0), _gpu(995.0)])
    assert isinstance(clock, FakeClock)
    deleted = store.prune(older_than_s=100.0)
    assert deleted["samples"] == 1 and deleted["chains"] == 1 and deleted["alerts_test"] == 1
    assert deleted["series"] == 1 and deleted["gpu_readings"] == 1
    assert list(store.list_series()["labels"]) == [{"r": "new"}]
    assert list(store.query("SELECT name FROM alerts_test")["name"]) == ["new"]
    # the series cache was cleared: writing the pruned series again works
    store.write_samples([_s("a_total", 996.0, 2.0, r="old")])
    assert len(store.series("a_total", {"r": "old"})) == 1


def test_generic_table_guards_identifiers(store: Store) -> None:
    with pytest.raises(StoreError):
        store.insert_rows("x; DROP TABLE samples", ["a"], [(1,)])
    with pytest.raises(StoreError):
        store.ensure_table("ok", "CREATE TABLE IF NOT EXISTS ok (a)", ts_column="a b")


def test_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_rows("chains", ["trace_id"], [("x",)])  # NOT NULL columns missing
    assert store.chains().empty


def test_readonly_store_refuses_writes(tmp_path) -> None:
    Store(tmp_path / "r.db").close()
    ro = Store(tmp_path / "r.db", readonly=True)
    with pytest.raises(ReadOnlyStoreError):
        ro.write_samples([_s("a_total", 1.0, 1.0)])
    ro.close()


def test_readonly_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(StoreError, match="no store"):
        Store(tmp_path / "absent.db", readonly=True)


def test_size_grows(store: Store) -> None:
    before = store.size_bytes()
    store.write_samples([_s("a_total", float(i), 1.0) for i in range(5000)])
    assert store.size_bytes() > before


def test_writer_flushes_on_count_and_on_time(store: Store) -> None:
    clock = FakeClock(0.0)
    w = StoreWriter(store, max_records=3, max_delay_s=5.0, clock=clock)
    w.add(_s("a_total", 1.0, 1.0))
    w.add(_chain("t1", 1.0, 0.1))
    assert len(w) == 2 and store.series("a_total").empty
    w.add(_s("a_total", 2.0, 1.0))  # third record: count trigger
    assert len(w) == 0 and len(store.series("a_total")) == 2 and len(store.chains()) == 1
    w.add(_gpu(3.0))
    assert w.maybe_flush() == 0
    clock.t = 5.0
    assert w.maybe_flush() == 1
    assert len(store.gpu_readings()) == 1 and w.flushes == 2 and w.written == 4


def test_writer_survives_a_failing_batch(store: Store) -> None:
    w = StoreWriter(store, max_records=100)
    bad = Anomaly(1.0, "d", "s", (), math.nan, 0.0, 0.0, {})  # NaN score -> NOT NULL fails
    w.extend([bad, _s("a_total", 1.0, 1.0)])
    assert w.flush() == 1
    assert w.failed_flushes == 1 and len(store.series("a_total")) == 1


def _reader_proc(path: str, q: mp.Queue) -> None:  # runs in a separate process
    ro = Store(path, readonly=True)
    seen = []
    for _ in range(500):
        seen.append(len(ro.series("live_total")))
        if seen[-1] >= 2001:
            break
        time.sleep(0.01)
    q.put((seen[0], seen[-1], seen == sorted(seen)))
    ro.close()


def test_reader_in_another_process_sees_commits_while_writer_writes(tmp_path) -> None:
    path = tmp_path / "shared.db"
    writer = Store(path)
    writer.write_samples([_s("live_total", 0.0, 0.0)])
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_reader_proc, args=(str(path), q))
    p.start()
    try:
        for batch in range(20):
            writer.write_samples([_s("live_total", batch * 100 + i + 1.0, 1.0) for i in range(100)])
        first, last, monotonic = q.get(timeout=30)
    finally:
        p.join(timeout=30)
        writer.close()
    assert p.exitcode == 0
    assert first >= 1 and last == 2001 and monotonic  # never a torn or shrinking read
