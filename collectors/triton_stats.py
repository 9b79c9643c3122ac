"""Model readiness and Triton's own statistics, through tritonclient's HTTP client.

Why beside ``/metrics``: readiness is not in the metrics at all, and a replica whose model is
unloaded simply stops reporting that model's series, which reads as "no traffic" rather than
"down". ``get_inference_statistics`` also gives the time of the last inference per model, which
tells an idle model from a stuck one.

PyTriton 0.7 restricts the model-repository and statistics endpoints behind a
``triton-access-token`` header (its ``TritonSecurityConfig``); pass the token the fleet set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from collectors.self_metrics import WardenMetrics
from collectors.triton import split_variant
from warden.records import Sample, freeze_labels

__all__ = ["TritonModelStats"]

logger = logging.getLogger(__name__)


class TritonModelStats:
    """A ``Collector`` of per-model readiness and statistics for each replica.

    Args:
        targets: replica name -> Triton HTTP address (``"127.0.0.1:8000"``).
        metrics: Warden's own metrics; failures count as scrape errors of ``<replica>/stats``.
        access_token: value of PyTriton's ``triton-access-token`` header, if restricted.
        timeout_s: connection and network timeout.
        client_factory: ``(url, timeout_s) -> client``; defaults to ``tritonclient.http``.
    """

    def __init__(
        self, targets: Mapping[str, str], *, metrics: WardenMetrics,
        access_token: str | None = None, timeout_s: float = 2.0,
        client_factory: Callable[[str, float], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.targets = dict(targets)
        self.metrics = metrics
        self.headers = {"triton-access-token": access_token} if access_token else None
        self.timeout_s = timeout_s
        self.clock = clock
        self._factory = client_factory or _http_client
        self._clients: dict[str, Any] = {}

    def _client(self, replica: str) -> Any:
        if replica not in self._clients:
            self._clients[replica] = self._factory(self.targets[replica], self.timeout_s)
        return self._clients[replica]

    def collect(self, now: float | None = None) -> list[Sample]:
        now = self.clock() if now is None else now
        out: list[Sample] = []
        for replica in self.targets:
            try:
                out.extend(self._one(replica, now))
            except Exception as exc:  # noqa: BLE001 - one bad replica must not stop the rest
                self.metrics.scrape_errors.labels(f"{replica}/stats", type(exc).__name__).inc()
                self._clients.pop(replica, None)
                out.append(Sample("triton_live", freeze_labels({"replica": replica}), now, 0.0))
        self.metrics.samples_ingested.labels("triton_stats").inc(len(out))
        return out

    def _one(self, replica: str, now: float) -> list[Sample]:
        client = self._client(replica)
        live = bool(client.is_server_live(headers=self.headers))
        out = [Sample("triton_live", freeze_labels({"replica": replica}), now, float(live))]
        # PyTriton's repository index comes back empty (it loads models explicitly), so the
        # models to check are the union of the index and of the statistics.
        index = client.get_model_repository_index(headers=self.headers) or []
        stats = client.get_inference_statistics("", headers=self.headers) or {}
        model_stats = {m.get("name", ""): m for m in stats.get("model_stats", [])}
        names = {e.get("name", "") for e in index} | set(model_stats)
        for name in sorted(n for n in names if n):
            base, variant = split_variant(name)
            labels = freeze_labels({"model": base, "variant": variant, "replica": replica})
            ready = bool(client.is_model_ready(name, headers=self.headers))
            out.append(Sample("triton_model_ready", labels, now, float(ready)))
            m = model_stats.get(name)
            if m is None:
                continue
            last_ms = float(m.get("last_inference") or 0)
            if last_ms > 0:
                out.append(Sample("triton_last_inference_age_seconds", labels, now,
                                  max(0.0, now - last_ms / 1000.0)))
            out.append(Sample("triton_inference_count_total", labels, now,
                              float(m.get("inference_count") or 0)))
        return out


def _http_client(url: str, timeout_s: float) -> Any:
    import tritonclient.http as httpclient  # heavy import: only when really used

    return httpclient.InferenceServerClient(
        url, connection_timeout=timeout_s, network_timeout=timeout_s)
