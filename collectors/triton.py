"""Triton's ``/metrics`` per replica, turned into rates and mean durations per model.

What Triton 2.51 (the binary in nvidia-pytriton 0.7.0) really exposes, from the captured
fixtures in ``tests/fixtures/triton/``: per model and version, the counters
``nv_inference_request_success``, ``nv_inference_request_failure{reason}``,
``nv_inference_count``, ``nv_inference_exec_count`` and the cumulative microsecond counters
``nv_inference_{request,queue,compute_input,compute_infer,compute_output}_duration_us``, plus
the gauge ``nv_inference_pending_request_count``. ``metrics_config=histogram_latencies=true``
adds nothing for an ordinary (non-decoupled) model: its only histogram is the first-response
histogram of decoupled models. ``summary_latencies=true`` adds ``nv_inference_*_summary_us``
quantiles, which cannot be merged across replicas and cost throughput (see
``benchmarks/triton_summary_cost.py``).

So: rates and per-interval means come from the counters here; per-replica P50/P95/P99 come from
the traces (``RequestChain`` rows, :meth:`warden.store.Store.chain_quantiles`), and from bucket
increases of any histogram family Triton does expose (mergeable: bucket counts add).

Series written (labels ``model``, ``variant``, ``replica``; ``reason`` on failures):
``triton_request_success_per_second``, ``triton_request_failure_per_second``,
``triton_inference_per_second``, ``triton_execution_per_second``, ``triton_batch_size``,
``triton_error_ratio``, ``triton_{request,queue,compute_input,compute_infer,compute_output}
_duration_seconds`` (mean per request over the interval), ``triton_pending_requests``,
``triton_up`` and, when exposed, ``triton_*_summary_seconds{quantile}``,
``triton_*_bucket_increase{le}`` and ``triton_*_quantile_seconds{quantile}``.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping

from collectors.promtext import CounterTracker, histogram_quantile, parse_tolerant
from collectors.self_metrics import WardenMetrics
from warden.records import Labels, Sample, freeze_labels

__all__ = ["TritonMetricsCollector", "split_variant"]

logger = logging.getLogger(__name__)

RATES: dict[str, str] = {
    "nv_inference_request_success": "triton_request_success_per_second",
    "nv_inference_request_failure": "triton_request_failure_per_second",
    "nv_inference_count": "triton_inference_per_second",
    "nv_inference_exec_count": "triton_execution_per_second",
}
#: cumulative microseconds -> mean seconds per request; compute stages divide by successes
#: (failed requests may never reach compute), request and queue by all requests.
DURATIONS: dict[str, tuple[str, str]] = {
    "nv_inference_request_duration_us": ("triton_request_duration_seconds", "requests"),
    "nv_inference_queue_duration_us": ("triton_queue_duration_seconds", "requests"),
    "nv_inference_compute_input_duration_us": ("triton_compute_input_duration_seconds", "success"),
    "nv_inference_compute_infer_duration_us": ("triton_compute_infer_duration_seconds", "success"),
    "nv_inference_compute_output_duration_us": (
        "triton_compute_output_duration_seconds", "success"),
}
GAUGES: dict[str, str] = {"nv_inference_pending_request_count": "triton_pending_requests"}
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
_UNIT_SCALE = {"_us": 1e-6, "_ms": 1e-3}

Fetch = Callable[[str, float], str]


def split_variant(model: str) -> tuple[str, str]:
    """``mlp_lite`` -> ``("mlp", "lite")``; anything else is the full variant."""
    if model.endswith("_lite"):
        return model[: -len("_lite")], "lite"
    return model, "full"


def _http_fetch(url: str, timeout_s: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback URLs
        return resp.read().decode("utf-8", errors="replace")


def _base(name: str) -> tuple[str, float]:
    """``nv_inference_first_response_histogram_ms`` -> (``inference_first_response_histogram``, 1e-3)."""
    stem = name.removeprefix("nv_")
    for suffix, scale in _UNIT_SCALE.items():
        if stem.endswith(suffix):
            return stem[: -len(suffix)], scale
    return stem, 1.0


class TritonMetricsCollector:
    """Scrapes each replica's ``/metrics`` and returns derived samples (a ``Collector``).

    Args:
        targets: replica name -> metrics URL, e.g. ``{"r0": "http://127.0.0.1:8002/metrics"}``.
        metrics: Warden's own metrics (errors, rejections, resets, lag).
        clock: Unix seconds, used when ``collect`` is called without ``now``.
        timeout_s: per-scrape HTTP timeout.
        fetch: ``(url, timeout_s) -> text``; the default is a plain HTTP GET.
    """

    def __init__(
        self, targets: Mapping[str, str], *, metrics: WardenMetrics,
        clock: Callable[[], float] = time.time, timeout_s: float = 2.0, fetch: Fetch | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.metrics = metrics
        self.clock = clock
        self.timeout_s = timeout_s
        self._fetch = fetch or _http_fetch
        self._counters = CounterTracker()
        self._started = clock()
        self._last_ok: dict[str, float] = {}

    def set_targets(self, targets: Mapping[str, str]) -> None:
        """Replace the replica set (the fleet scaled); state of removed replicas is dropped."""
        self.targets = dict(targets)
        self._last_ok = {r: t for r, t in self._last_ok.items() if r in self.targets}

    def collect(self, now: float | None = None) -> list[Sample]:
        """Scrape every target once; a failing target yields ``triton_up=0`` and a counted error."""
        now = self.clock() if now is None else now
        out: list[Sample] = []
        for replica, url in self.targets.items():
            started = time.monotonic()
            try:
                text = self._fetch(url, self.timeout_s)
            except Exception as exc:  # noqa: BLE001 - a dead replica must not stop the loop
                logger.debug("scrape of %s (%s) failed: %s", replica, url, exc)
                self.metrics.scrape_errors.labels(replica, _reason(exc)).inc()
                out.append(Sample("triton_up", freeze_labels({"replica": replica}), now, 0.0))
                self.metrics.scrape_lag.labels(replica).set(
                    now - self._last_ok.get(replica, self._started))
                continue
            self.metrics.scrape_duration.labels(replica).set(time.monotonic() - started)
            self._last_ok[replica] = now
            self.metrics.scrape_lag.labels(replica).set(0.0)
            out.append(Sample("triton_up", freeze_labels({"replica": replica}), now, 1.0))
            out.extend(self.ingest_text(replica, text, now))
        self.metrics.samples_ingested.labels("triton").inc(len(out))
        return out

    # -- parsing --------------------------------------------------------------------------------

    def ingest_text(self, replica: str, text: str, now: float) -> list[Sample]:
        """Turn one scrape's text into samples; bad lines and values are counted, not raised."""
        parsed, rejected = parse_tolerant(text)
        if rejected:
            self.metrics.samples_rejected.labels(replica, "garbage").inc(len(rejected))
        # Sum over model versions: Warden's series are per model, variant and replica.
        counters: dict[tuple[str, Labels], float] = defaultdict(float)
        out: list[Sample] = []
        buckets: dict[tuple[str, Labels], dict[float, float]] = defaultdict(dict)
        for s in parsed:
            if math.isnan(s.value):
                self.metrics.samples_rejected.labels(replica, "nan").inc()
                continue
            # prometheus-client names counter samples ``<family>_total``; Triton's have no suffix
            name = s.name.removesuffix("_total") if s.kind == "counter" else s.name
            labels = dict(s.labels)
            model = labels.pop("model", None)
            if model is None:
                continue  # process-wide gauges (pinned memory pool): not per model
            base, variant = split_variant(model)
            labels.pop("version", None)
            labels.update(model=base, variant=variant, replica=replica)
            if name in RATES or name in DURATIONS:
                if s.value < 0:
                    self.metrics.samples_rejected.labels(replica, "negative").inc()
                    continue
                counters[(name, freeze_labels(labels))] += s.value
            elif name in GAUGES:
                out.append(Sample(GAUGES[name], freeze_labels(labels), now, s.value))
            elif s.kind == "summary" and "quantile" in labels:
                stem, scale = _base(s.name)
                out.append(Sample(f"triton_{stem}_seconds", freeze_labels(labels), now,
                                  s.value * scale))
            elif s.kind == "histogram" and s.name.endswith("_bucket") and "le" in labels:
                le = float(labels.pop("le"))
                key = (s.name[: -len("_bucket")], freeze_labels(labels))
                buckets[key][le] = buckets[key].get(le, 0.0) + s.value
        out.extend(self._derive(replica, counters, now))
        out.extend(self._histograms(replica, buckets, now))
        return out

    def _derive(
        self, replica: str, counters: Mapping[tuple[str, Labels], float], now: float
    ) -> list[Sample]:
        out: list[Sample] = []
        increases: dict[tuple[str, Labels], float] = {}
        reset = False
        for key, value in counters.items():
            delta = self._counters.update((replica, *key), value, now)
            if delta is None:
                continue
            reset = reset or delta.reset
            name, labels = key
            increases[key] = delta.increase
            if name in RATES:
                out.append(Sample(RATES[name], labels, now, delta.rate))
        if reset:
            self.metrics.counter_resets.labels(replica).inc()
        if not increases:
            return out
        per_model: dict[Labels, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for (name, labels), inc in increases.items():
            model_labels = tuple(kv for kv in labels if kv[0] != "reason")
            per_model[model_labels][name] += inc
        for labels, inc in per_model.items():
            success = inc.get("nv_inference_request_success", 0.0)
            failed = inc.get("nv_inference_request_failure", 0.0)
            divisors = {"success": success, "requests": success + failed}
            for counter, (series, per) in DURATIONS.items():
                if counter in inc and divisors[per] > 0:
                    out.append(Sample(series, labels, now, inc[counter] * 1e-6 / divisors[per]))
            if success + failed > 0:
                out.append(Sample("triton_error_ratio", labels, now, failed / (success + failed)))
            execs = inc.get("nv_inference_exec_count", 0.0)
            if execs > 0 and "nv_inference_count" in inc:
                out.append(Sample("triton_batch_size", labels, now,
                                  inc["nv_inference_count"] / execs))
        return out

    def _histograms(
        self, replica: str, buckets: Mapping[tuple[str, Labels], dict[float, float]], now: float
    ) -> list[Sample]:
        """Per-interval bucket increases (mergeable) and this replica's quantiles from them."""
        out: list[Sample] = []
        for (family, labels), cumulative in buckets.items():
            stem, scale = _base(family)
            increase: dict[float, float] = {}
            for le, count in cumulative.items():
                delta = self._counters.update((replica, family, labels, le), count, now)
                if delta is not None:
                    increase[le] = delta.increase
            if not increase:
                continue
            for le, inc in sorted(increase.items()):
                lab = freeze_labels({**dict(labels), "le": "+Inf" if math.isinf(le) else f"{le * scale:g}"})
                out.append(Sample(f"triton_{stem}_bucket_increase", lab, now, inc))
            for q in QUANTILES:
                v = histogram_quantile(q, increase)
                if not math.isnan(v):
                    lab = freeze_labels({**dict(labels), "quantile": f"{q:g}"})
                    out.append(Sample(f"triton_{stem}_quantile_seconds", lab, now, v * scale))
        return out


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"http_{exc.code}"
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timeout"
    if isinstance(exc, urllib.error.URLError | ConnectionError | OSError):
        return "connect"
    return type(exc).__name__.lower()
