"""PrometheusSource against a loopback HTTP server that answers as Prometheus' API does, including
its failures: error envelopes, NaN/Inf strings, HTML error pages, slow answers, a closed port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from prometheus_client import CollectorRegistry

from collectors.prometheus import (
    PromQuery,
    PrometheusBadResponse,
    PrometheusQueryError,
    PrometheusSource,
    PrometheusUnavailable,
    triton_queries,
)
from collectors.self_metrics import WardenMetrics
from serving.fleet import free_port


def _ok(result_type: str, result: object) -> tuple[int, bytes, float]:
    return 200, json.dumps({"status": "success",
                            "data": {"resultType": result_type, "result": result}}).encode(), 0.0


def _vec(*elements: tuple[dict[str, str], str], ts: float = 1000.0) -> tuple[int, bytes, float]:
    return _ok("vector", [{"metric": m, "value": [ts, v]} for m, v in elements])


class FakePrometheusAPI:
    """A real HTTP server on 127.0.0.1; ``answers``: PromQL -> (status, body, delay)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, float]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                u = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(u.query).items()}
                api.requests.append((u.path, params))
                status, body, delay = api.answers.get(params.get("query", ""), (404, b"", 0.0))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakePrometheusAPI]:
    a = FakePrometheusAPI()
    yield a
    a.close()


@pytest.fixture
def metrics() -> WardenMetrics:
    return WardenMetrics(CollectorRegistry())


def _source(api: FakePrometheusAPI, metrics: WardenMetrics, queries: list[PromQuery],
            **kw: object) -> PrometheusSource:
    return PrometheusSource(api.url, metrics=metrics, queries=queries,
                            replicas={"10.0.0.1:8002": "r0"}, timeout_s=kw.pop("timeout_s", 2.0),
                            **kw)  # type: ignore[arg-type]


def test_collect_relabels_instance_and_splits_variant(api, metrics) -> None:
    api.answers["q_rate"] = _vec(
        ({"instance": "10.0.0.1:8002", "job": "triton", "model": "mlp_lite"}, "12.5"),
        ({"instance": "10.0.0.9:8002", "job": "triton", "model": "mlp"}, "3"),
    )
    with _source(api, metrics, [PromQuery("triton_request_success_per_second", "q_rate")]) as src:
        out = src.collect(1000.0)
    by_replica = {dict(s.labels)["replica"]: s for s in out}
    assert dict(by_replica["r0"].labels) == {"model": "mlp", "variant": "lite", "replica": "r0"}
    assert by_replica["r0"].value == 12.5 and by_replica["r0"].ts == 1000.0
    # an instance missing from the relabel map keeps its address as the replica name
    assert by_replica["10.0.0.9:8002"].value == 3.0
    assert dict(by_replica["10.0.0.9:8002"].labels)["variant"] == "full"
    path, params = api.requests[-1]
    assert path == "/api/v1/query" and params["time"] == "1000.000" and params["timeout"] == "2s"
    assert metrics.value("warden_samples_ingested_total", {"source": "prometheus"}) == 2


def test_keep_labels_and_constant_labels(api, metrics) -> None:
    api.answers["q"] = _vec(({"instance": "10.0.0.1:8002", "model": "synth", "reason": "REJECTED",
                              "extra": "dropped"}, "1"))
    q = PromQuery("triton_request_failure_per_second", "q", keep=("reason",),
                  labels={"source": "prom"})
    (s,) = _source(api, metrics, [q]).collect(1.0)
    assert dict(s.labels) == {"model": "synth", "variant": "full", "replica": "r0",
                              "reason": "REJECTED", "source": "prom"}


def test_nan_and_inf_strings_are_dropped_and_counted(api, metrics) -> None:
    api.answers["q"] = _vec(({"instance": "a", "model": "m1"}, "NaN"),
                            ({"instance": "a", "model": "m2"}, "+Inf"),
                            ({"instance": "a", "model": "m3"}, "-Inf"),
                            ({"instance": "a", "model": "m4"}, "0.25"),
                            ({"instance": "a", "model": "m5"}, "not-a-number"))
    out = _source(api, metrics, [PromQuery("x", "q")]).collect(1.0)
    assert [(dict(s.labels)["model"], s.value) for s in out] == [("m4", 0.25)]
    rejected = {r: metrics.value("warden_samples_rejected_total",
                                 {"target": "prometheus", "reason": r})
                for r in ("nan", "inf", "garbage")}
    assert rejected == {"nan": 1, "inf": 2, "garbage": 1}


def test_api_error_is_raised_by_query_and_counted_by_collect(api, metrics) -> None:
    api.answers["bad("] = (400, json.dumps({"status": "error", "errorType": "bad_data",
                                            "error": "parse error at char 5"}).encode(), 0.0)
    api.answers["good"] = _vec(({"instance": "10.0.0.1:8002", "model": "synth"}, "2"))
    src = _source(api, metrics, [PromQuery("a", "bad("), PromQuery("b", "good")])
    with pytest.raises(PrometheusQueryError, match="parse error") as info:
        src.query("bad(", 1.0)
    assert info.value.reason == "bad_data"
    out = src.collect(1.0)  # the broken query does not stop the good one
    assert [s.series for s in out] == ["b"]
    assert metrics.value("warden_scrape_errors_total",
                         {"target": "prometheus", "reason": "bad_data"}) == 1


@pytest.mark.parametrize(("answer", "reason"), [
    ((502, b"<html>Bad Gateway</html>", 0.0), "http_502"),
    ((200, b"not json at all", 0.0), "non_json"),
    ((200, b"[1, 2]", 0.0), "bad_shape"),
    ((200, b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}',
      0.0), "bad_shape"),
    ((200, b'{"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}', 0.0),
     "bad_shape"),
])
def test_broken_bodies_raise_bad_response(api, metrics, answer, reason) -> None:
    api.answers["q"] = answer
    src = _source(api, metrics, [PromQuery("x", "q")])
    with pytest.raises(PrometheusBadResponse) as info:
        src.query("q", 1.0)
    assert info.value.reason == reason
    assert src.collect(1.0) == []
    assert metrics.value("warden_scrape_errors_total",
                         {"target": "prometheus", "reason": reason}) == 1


def test_timeout_and_closed_port_are_unavailable(api, metrics) -> None:
    api.answers["slow"] = (*_vec()[:2], 1.0)
    src = _source(api, metrics, [PromQuery("x", "slow")], timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(PrometheusUnavailable) as info:
        src.query("slow", 1.0)
    assert info.value.reason == "timeout" and time.monotonic() - started < 0.9
    assert src.collect(1.0) == []
    assert metrics.value("warden_scrape_errors_total",
                         {"target": "prometheus", "reason": "timeout"}) == 1

    dead = PrometheusSource(f"http://127.0.0.1:{free_port()}", metrics=metrics,
                            queries=[PromQuery("x", "q")], timeout_s=0.5)
    with pytest.raises(PrometheusUnavailable) as info:
        dead.query("q", 1.0)
    assert info.value.reason == "connect"
    assert dead.collect(1.0) == []
    assert metrics.value("warden_scrape_errors_total",
                         {"target": "prometheus", "reason": "connect"}) == 1


def test_empty_and_scalar_results(api, metrics) -> None:
    api.answers["none"] = _vec()
    api.answers["scalar(1)"] = _ok("scalar", [5.0, "7"])
    src = _source(api, metrics, [PromQuery("x", "none")])
    df = src.query("none", 5.0)
    assert df.empty and list(df.columns) == ["ts", "value"]
    assert src.collect(5.0) == []
    df = src.query("scalar(1)", 5.0)
    assert df[["ts", "value"]].values.tolist() == [[5.0, 7.0]]


def test_query_range_frame(api, metrics) -> None:
    api.answers["rate(x[1m])"] = _ok("matrix", [
        {"metric": {"instance": "b"}, "values": [[20, "2"], [10, "1"], [30, "NaN"]]},
        {"metric": {"instance": "a", "model": "m"}, "values": [[15, "1.5"]]},
    ])
    src = _source(api, metrics, [])
    df = src.query_range("rate(x[1m])", 10, 30, 10)
    assert list(df.columns) == ["ts", "value", "instance", "model"]
    assert df[["ts", "value", "instance", "model"]].values.tolist() == [
        [10.0, 1.0, "b", ""], [15.0, 1.5, "a", "m"], [20.0, 2.0, "b", ""]]
    _, params = api.requests[-1]
    assert (params["start"], params["end"], params["step"]) == ("10.000", "30.000", "10")
    assert metrics.value("warden_samples_rejected_total",
                         {"target": "prometheus", "reason": "nan"}) == 1
    with pytest.raises(ValueError, match="step"):
        src.query_range("rate(x[1m])", 30, 10, 10)
    with pytest.raises(ValueError, match="step"):
        src.query_range("rate(x[1m])", 10, 30, 0)


def test_two_series_mapped_onto_one_are_counted_not_duplicated(api, metrics) -> None:
    api.answers["q"] = _vec(({"instance": "10.0.0.1:8002", "model": "synth", "version": "1"}, "1"),
                            ({"instance": "10.0.0.1:8002", "model": "synth", "version": "2"}, "2"))
    out = _source(api, metrics, [PromQuery("x", "q")]).collect(1.0)
    assert len(out) == 1
    assert metrics.value("warden_samples_rejected_total",
                         {"target": "prometheus", "reason": "duplicate"}) == 1


def test_triton_queries_mirror_the_direct_collector() -> None:
    from collectors.triton import DURATIONS, GAUGES, RATES

    qs = triton_queries(window="30s", selector='job="triton"')
    names = {q.series for q in qs}
    assert set(RATES.values()) | {s for s, _ in DURATIONS.values()} | set(GAUGES.values()) <= names
    assert {"triton_error_ratio", "triton_batch_size"} <= names
    for q in qs:
        assert q.promql.count("(") == q.promql.count(")"), q.promql
        assert 'job="triton"' in q.promql, q.promql
        if "rate(" in q.promql:
            assert "[30s]" in q.promql
    with pytest.raises(ValueError):
        PrometheusSource("http://127.0.0.1:1", timeout_s=0)
