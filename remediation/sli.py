"""SLIs read from the store for preconditions and verification.

Why a tiny Protocol: the executor asks one question, "what is SLI *name* for these labels over the
last *window* seconds?", and must hear ``None`` when there is no data, because missing data must
neither pass a verification nor trigger a scale-in. :class:`StoreSli` answers from
:class:`warden.store.Store`:

* ``p50_latency_seconds``, ``p95_...``, ``p99_latency_seconds``: quantile of end-to-end latency
  of traced requests (``chains``), filtered by ``model``/``replica``/``variant`` labels;
* ``queue_p99_seconds`` (any ``pNN``): the same quantile of the ``queue`` stage;
* ``error_ratio``: errored chains / chains;
* any other name: the mean of that series' samples in the window (e.g. a utilisation gauge).

``min_count`` chains are needed for a quantile: a P99 over three requests is noise, not data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

__all__ = ["SliSource", "StaticSli", "StoreSli"]

_QUANT = re.compile(r"^p(\d+(?:\.\d+)?)_(latency|queue|compute_infer|model_code)_seconds$")
_QUEUE = re.compile(r"^queue_p(\d+(?:\.\d+)?)_seconds$")


class SliSource(Protocol):
    def read(self, name: str, labels: Mapping[str, str], window_s: float, now: float
             ) -> float | None:
        """The SLI over ``[now - window_s, now)``, or ``None`` when there is no data."""
        ...


class StoreSli:
    """SLIs from the store's chains and series."""

    def __init__(self, store: Any, *, min_count: int = 5) -> None:
        self.store = store
        self.min_count = min_count

    def read(self, name: str, labels: Mapping[str, str], window_s: float, now: float
             ) -> float | None:
        start = now - window_s
        m, mq = _QUANT.match(name), _QUEUE.match(name)
        filters = {k: v for k, v in labels.items() if k in ("model", "replica", "variant") and v}
        if m or mq or name == "error_ratio":
            df = self.store.chains(start, now, **filters)
            if len(df) < self.min_count:
                return None
            if name == "error_ratio":
                return float(df["error"].astype(float).mean())
            q = float((m or mq).group(1)) / 100.0  # type: ignore[union-attr]
            col = "queue" if mq else ("latency_s" if m.group(2) == "latency"  # type: ignore
                                      else m.group(2))  # type: ignore[union-attr]
            if col not in df.columns:
                return None
            values = df[col].dropna().astype(float).to_numpy()
            if len(values) < self.min_count:
                return None
            return float(np.quantile(values, q))
        df = self.store.series(name, dict(labels) or None, start, now)
        if df.empty:
            return None
        return float(df["value"].astype(float).mean())


class StaticSli:
    """SLIs from a callable ``(name, labels, now) -> value``: for dry runs and unit tests.

    Named for what it is: it reads no store.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def read(self, name: str, labels: Mapping[str, str], window_s: float, now: float
             ) -> float | None:
        return self.fn(name, dict(labels), now)
