"""Readings of simulated GPU twins: in process, or over HTTP from the replicas that run them.

In the lab each replica process owns its twin (the twin must see that process's busy time and
slow its model), and serves ``reading_to_dict(twin.reading())`` at ``GET /gpu`` on its control
port. :class:`TwinHttpSource` polls those endpoints; :class:`TwinCollector` reads twins living in
the same process (tests, single-process tools). Both return the same ``GpuReading`` as NVML,
always with ``simulated=True``: a payload that claims otherwise is rejected, not trusted.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from collectors.gpu_record import reading_from_dict
from warden.records import GpuReading, Sample, freeze_labels

__all__ = ["TwinCollector", "TwinHttpSource"]

log = logging.getLogger(__name__)


class TwinCollector:
    """Readings of in-process twins, ``{replica: GpuTwin}``; labelled with the replica."""

    simulated = True

    def __init__(self, twins: Mapping[str, Any], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._twins = dict(twins)
        self._clock = clock

    def collect(self, now: float | None = None) -> list[GpuReading | Sample]:
        ts = self._clock() if now is None else now
        return [twin.reading(ts, replica=replica) for replica, twin in self._twins.items()]

    def close(self) -> None:
        """Nothing to release; present so every GPU collector closes the same way."""


class TwinHttpSource:
    """Polls ``GET <url>`` per replica for a twin reading in :func:`reading_to_dict`'s shape.

    A replica that is down, slow, or answers garbage costs one counted rejection
    (:attr:`rejected`, by replica and reason) and no reading; the others still report.
    """

    simulated = True

    def __init__(self, urls: Mapping[str, str], *, timeout_s: float = 1.0,
                 client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._urls = dict(urls)
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s)
        self._clock = clock
        self.rejected: collections.Counter[tuple[str, str]] = collections.Counter()

    def set_urls(self, urls: Mapping[str, str]) -> None:
        """Replace the replica set (the fleet scales in and out)."""
        self._urls = dict(urls)

    def fetch(self, replica: str, url: str) -> GpuReading | None:
        """One replica's reading, or ``None`` with the reason counted."""
        try:
            resp = self._client.get(url)
            resp.raise_for_status()
            reading = reading_from_dict(resp.json())
        except httpx.HTTPError as exc:
            self._reject(replica, "http", exc)
            return None
        except ValueError as exc:  # BadGpuPayload, and JSON decode errors, are ValueErrors
            self._reject(replica, "payload", exc)
            return None
        if not reading.simulated:
            self._reject(replica, "payload", "twin endpoint claims simulated=false")
            return None
        return dataclasses.replace(reading, replica=replica)

    def collect(self, now: float | None = None) -> list[GpuReading | Sample]:
        ts = self._clock() if now is None else now
        out: list[GpuReading | Sample] = []
        for replica, url in self._urls.items():
            reading = self.fetch(replica, url)
            if reading is not None:
                out.append(reading)
        out.append(Sample("warden_gpu_collector_errors_total",
                          freeze_labels({"collector": "twin_http"}), ts,
                          float(sum(self.rejected.values()))))
        return out

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def _reject(self, replica: str, reason: str, exc: object) -> None:
        self.rejected[(replica, reason)] += 1
        log.debug("GPU twin reading from %s rejected (%s): %s", replica, reason, exc)
