"""Read series from a Prometheus server's HTTP API, for production fleets.

Why: in production a Prometheus already scrapes Triton and the DCGM exporter; Warden should read
what it holds instead of scraping every replica a second time. :class:`PrometheusSource` is a
``Collector`` (one instant query per configured :class:`PromQuery` per tick) and also answers ad
hoc ``query`` / ``query_range`` calls as DataFrames, for backfilling baselines.

The default query set (:func:`triton_queries`) mirrors what
:class:`collectors.triton.TritonMetricsCollector` derives from a direct scrape (same series
names, same ``model``/``variant``/``replica`` labels), so the two sources are interchangeable and
comparable. Prometheus' ``instance`` (or ``job``) label becomes Warden's ``replica`` through a
relabel map (``{"10.0.0.5:8002": "r0"}``); an unmapped instance is kept as its own name.

Errors (raised by ``query`` / ``query_range``; ``collect`` counts them and never raises)::

    PrometheusError(Exception)            .reason: a short label for counters
     ├── PrometheusUnavailable            connect failure or timeout ("connect", "timeout")
     ├── PrometheusBadResponse            not JSON, or JSON of an unexpected shape
     │                                    ("non_json", "bad_shape", "http_<code>")
     └── PrometheusQueryError             the API said status "error" (reason: its errorType,
                                          e.g. "bad_data", "timeout", "execution")

Values Prometheus sends as the strings ``"NaN"``, ``"+Inf"``, ``"-Inf"`` (a ratio over an idle
window, a division by zero) are dropped and counted in ``warden_samples_rejected{target,reason}``
with reason ``nan`` or ``inf``, as the direct scraper does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from collectors.self_metrics import WardenMetrics
from collectors.triton import split_variant
from warden.records import Sample, freeze_labels

__all__ = [
    "PromQuery",
    "PrometheusBadResponse",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusSource",
    "PrometheusUnavailable",
    "triton_queries",
]

logger = logging.getLogger(__name__)

#: ``(url, params, timeout_s) -> (http_status, body)``; raise ``TimeoutError`` / ``OSError``.
Fetch = Callable[[str, Mapping[str, str], float], tuple[int, bytes]]


class PrometheusError(Exception):
    """Base of this module's errors; ``reason`` is a short, low-cardinality counter label."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PrometheusUnavailable(PrometheusError):
    """The server could not be reached, or did not answer within the timeout."""


class PrometheusBadResponse(PrometheusError):
    """The body was not the JSON envelope of Prometheus' API."""


class PrometheusQueryError(PrometheusError):
    """Prometheus answered ``status: "error"``; ``reason`` is its ``errorType``."""


@dataclass(frozen=True, slots=True)
class PromQuery:
    """One PromQL expression and how its result becomes Warden samples.

    Args:
        series: Warden series name for every element of the result.
        promql: the expression, evaluated as an instant query at each tick.
        keep: result labels copied as they are (besides ``model`` and the replica).
        split_model: turn ``model="mlp_lite"`` into ``model="mlp", variant="lite"``.
        labels: constant labels added to every sample.
    """

    series: str
    promql: str
    keep: tuple[str, ...] = ()
    split_model: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)


_BY = "instance, job, model"


def triton_queries(window: str = "1m", selector: str = "") -> list[PromQuery]:
    """The series :class:`~collectors.triton.TritonMetricsCollector` makes, as PromQL.

    Args:
        window: the range of every ``rate()``; at least twice the scrape interval.
        selector: extra matchers for every Triton metric, e.g. ``job="triton"``.

    Versions are summed (Warden's series are per model, not per version); durations are mean
    seconds per request over the window, divided by all requests (request, queue) or by successes
    (compute stages), exactly as the direct collector divides them. Divisors are filtered with
    ``> 0`` so an idle model yields no sample rather than a NaN.
    """
    sel = f"{{{selector}}}" if selector else ""

    def rate(metric: str, by: str = _BY) -> str:
        return f"sum by ({by}) (rate({metric}{sel}[{window}]))"

    requests = (f'sum by ({_BY}) (rate({{__name__=~"nv_inference_request_success|'
                f'nv_inference_request_failure"{"," + selector if selector else ""}}}[{window}]))')
    success = rate("nv_inference_request_success")
    out = [
        PromQuery("triton_request_success_per_second", success),
        PromQuery("triton_request_failure_per_second",
                  rate("nv_inference_request_failure", _BY + ", reason"), keep=("reason",)),
        PromQuery("triton_inference_per_second", rate("nv_inference_count")),
        PromQuery("triton_execution_per_second", rate("nv_inference_exec_count")),
        PromQuery("triton_error_ratio",
                  f"{rate('nv_inference_request_failure')} / ({requests} > 0)"),
        PromQuery("triton_batch_size",
                  f"{rate('nv_inference_count')} / ({rate('nv_inference_exec_count')} > 0)"),
        PromQuery("triton_pending_requests",
                  f"sum by ({_BY}) (nv_inference_pending_request_count{sel})"),
    ]
    for stage, per in (("request", requests), ("queue", requests),
                       ("compute_input", success), ("compute_infer", success),
                       ("compute_output", success)):
        out.append(PromQuery(
            f"triton_{stage}_duration_seconds",
            f"{rate(f'nv_inference_{stage}_duration_us')} / ({per} > 0) / 1e6",
        ))
    return out


def _float(text: Any) -> float:
    """Prometheus sends values as strings, including ``"NaN"``, ``"+Inf"``, ``"-Inf"``."""
    return float(text)


class PrometheusSource:
    """A ``Collector`` over Prometheus' HTTP API (``/api/v1/query``, ``/api/v1/query_range``).

    Args:
        base_url: e.g. ``http://prometheus:9090`` (a path prefix is kept).
        queries: what :meth:`collect` evaluates; default :func:`triton_queries`.
        metrics: Warden's own metrics; errors and rejections are counted under ``target=name``.
        replicas: relabel map, Prometheus ``instance`` (or ``job``) value -> Warden replica name.
        timeout_s: HTTP timeout, also sent to Prometheus as its evaluation timeout.
        clock: Unix seconds, for ``query(at=None)`` and ``collect(None)``.
        fetch: ``(url, params, timeout_s) -> (status, body)``; default: an ``httpx.Client``.
        name: the ``target`` label of this source's counters.
    """

    def __init__(
        self, base_url: str, *, queries: Sequence[PromQuery] | None = None,
        metrics: WardenMetrics | None = None, replicas: Mapping[str, str] | None = None,
        timeout_s: float = 5.0, clock: Callable[[], float] = time.time,
        fetch: Fetch | None = None, name: str = "prometheus",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.queries = list(triton_queries() if queries is None else queries)
        self.metrics = metrics
        self.replicas = dict(replicas or {})
        self.timeout_s = timeout_s
        self.clock = clock
        self.name = name
        self._client: Any = None
        self._fetch = fetch or self._httpx_fetch

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------

    def _httpx_fetch(
        self, url: str, params: Mapping[str, str], timeout_s: float
    ) -> tuple[int, bytes]:
        import httpx

        if self._client is None:
            self._client = httpx.Client()
        try:
            resp = self._client.get(url, params=dict(params), timeout=timeout_s)
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc) or "timed out") from exc
        except httpx.TransportError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        return resp.status_code, resp.content

    def _api(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """Call one API endpoint and return its ``data``; every failure is a PrometheusError."""
        url = f"{self.base_url}/api/v1/{path}"
        params = {**params, "timeout": f"{self.timeout_s:g}s"}
        try:
            status, body = self._fetch(url, params, self.timeout_s)
        except TimeoutError as exc:
            raise PrometheusUnavailable(f"{url}: timed out after {self.timeout_s:g} s",
                                        "timeout") from exc
        except OSError as exc:
            raise PrometheusUnavailable(f"{url}: {exc}", "connect") from exc
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "non_json" if status < 400 else f"http_{status}"
            raise PrometheusBadResponse(
                f"{url}: HTTP {status}, body is not JSON: {body[:120]!r}", reason) from exc
        if not isinstance(doc, dict):
            raise PrometheusBadResponse(f"{url}: JSON body is not an object", "bad_shape")
        if doc.get("status") == "error":
            etype = str(doc.get("errorType") or f"http_{status}")
            raise PrometheusQueryError(f"{url} ({params.get('query', '')}): {etype}: "
                                       f"{doc.get('error', '')}", etype)
        data = doc.get("data")
        if doc.get("status") != "success" or not isinstance(data, dict):
            raise PrometheusBadResponse(f"{url}: HTTP {status}, unexpected envelope", "bad_shape")
        for w in doc.get("warnings") or ():
            logger.warning("prometheus warning for %s: %s", params.get("query", ""), w)
        return data

    # -- queries --------------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> pd.DataFrame:
        """Instant query at ``at`` (Unix seconds, default now): columns ``ts``, ``value`` and
        one per label. Non-finite values are dropped and counted."""
        at = self.clock() if at is None else at
        data = self._api("query", {"query": promql, "time": f"{at:.3f}"})
        rtype, result = data.get("resultType"), data.get("result")
        rows: list[tuple[dict[str, str], Any]] = []
        if rtype == "vector" and isinstance(result, list):
            for el in result:
                if not isinstance(el, dict) or not _is_point(el.get("value")):
                    raise PrometheusBadResponse(f"malformed vector element: {el!r:.120}",
                                                "bad_shape")
                rows.append((_labels(el.get("metric")), el["value"]))
        elif rtype == "scalar" and _is_point(result):
            rows.append(({}, result))
        elif rtype == "matrix" and isinstance(result, list):
            raise PrometheusBadResponse("instant query returned a matrix (a range selector "
                                        "without a function?)", "bad_shape")
        else:
            raise PrometheusBadResponse(f"unexpected result type {rtype!r}", "bad_shape")
        return self._frame([(lab, pt) for lab, pt in rows])

    def query_range(self, promql: str, start: float, end: float, step: float) -> pd.DataFrame:
        """Range query: columns ``ts``, ``value`` and one per label, sorted by time."""
        if not (step > 0 and math.isfinite(start) and math.isfinite(end) and end >= start):
            raise ValueError(f"need start <= end and step > 0, got {start}, {end}, {step}")
        data = self._api("query_range", {"query": promql, "start": f"{start:.3f}",
                                         "end": f"{end:.3f}", "step": f"{step:g}"})
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise PrometheusBadResponse(f"unexpected result type {data.get('resultType')!r}",
                                        "bad_shape")
        pairs = []
        for el in result:
            values = el.get("values") if isinstance(el, dict) else None
            if not isinstance(values, list) or not all(_is_point(p) for p in values):
                raise PrometheusBadResponse(f"malformed matrix element: {el!r:.120}", "bad_shape")
            lab = _labels(el.get("metric"))
            pairs.extend((lab, p) for p in values)
        return self._frame(pairs)

    def _frame(self, pairs: Iterable[tuple[dict[str, str], Any]]) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        keys: set[str] = set()
        for lab, (ts, raw) in pairs:
            try:
                value = _float(raw)
                ts = float(ts)
            except (TypeError, ValueError):
                self._reject("garbage")
                continue
            if math.isnan(value):
                self._reject("nan")
                continue
            if math.isinf(value):
                self._reject("inf")
                continue
            keys.update(lab)
            rows.append({"ts": ts, "value": value, **lab})
        cols = ["ts", "value", *sorted(keys)]
        df = pd.DataFrame(rows, columns=cols)
        for k in keys:
            df[k] = df[k].fillna("")
        return df.sort_values("ts", kind="stable").reset_index(drop=True)

    def _reject(self, reason: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.samples_rejected.labels(self.name, reason).inc(n)

    # -- the Collector --------------------------------------------------------------------------

    def collect(self, now: float | None = None) -> list[Sample]:
        """Evaluate every configured query at ``now``; a failing query is counted and skipped."""
        now = self.clock() if now is None else now
        out: list[Sample] = []
        started = time.monotonic()
        for q in self.queries:
            try:
                df = self.query(q.promql, now)
            except PrometheusError as exc:
                logger.debug("prometheus query for %s failed: %s", q.series, exc)
                if self.metrics is not None:
                    self.metrics.scrape_errors.labels(self.name, exc.reason).inc()
                continue
            except Exception:  # noqa: BLE001 - a bad answer must not stop the engine's tick
                logger.exception("prometheus query for %s failed unexpectedly", q.series)
                if self.metrics is not None:
                    self.metrics.scrape_errors.labels(self.name, "internal").inc()
                continue
            out.extend(self._samples(q, df, now))
        if self.metrics is not None:
            self.metrics.scrape_duration.labels(self.name).set(time.monotonic() - started)
            self.metrics.samples_ingested.labels(self.name).inc(len(out))
        return out

    def relabel(self, raw: Mapping[str, str], query: PromQuery) -> dict[str, str]:
        """Prometheus labels -> Warden labels for one result element of ``query``."""
        labels: dict[str, str] = dict(query.labels)
        for k in query.keep:
            if raw.get(k):
                labels[k] = raw[k]
        model = raw.get("model")
        if model:
            if query.split_model:
                labels["model"], labels["variant"] = split_variant(model)
            else:
                labels["model"] = model
        instance, job = raw.get("instance", ""), raw.get("job", "")
        replica = self.replicas.get(instance) or self.replicas.get(job) or instance
        if replica:
            labels["replica"] = replica
        return labels

    def _samples(self, q: PromQuery, df: pd.DataFrame, now: float) -> list[Sample]:
        out: list[Sample] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for rec in df.to_dict("records"):
            value = float(rec.pop("value"))
            rec.pop("ts", None)
            raw = {str(k): str(v) for k, v in rec.items() if v}
            labels = freeze_labels(self.relabel(raw, q))
            if labels in seen:  # two Prometheus series mapped onto one Warden series
                self._reject("duplicate")
                continue
            seen.add(labels)
            out.append(Sample(q.series, labels, now, value))
        return out


def _is_point(p: Any) -> bool:
    return isinstance(p, list | tuple) and len(p) == 2


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict):
        return {}
    return {str(k): str(v) for k, v in metric.items()}
