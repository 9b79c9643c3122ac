"""SLO events from the store's request chains: the real traffic, one row per request.

Why chains: a chain (``warden.store``'s ``chains`` table, written by the trace receiver) is one
request as the client saw it, with its end-to-end latency and whether any span of it failed, so
an SLO counted from chains is the user's experience, not one server's view of it.

How variants map: ``chains.model`` holds the *requested* model name, whichever variant served
it. ``collectors.chains.build_chain`` takes ``warden.model`` from the spans (the load generator
sets the requested name; the model span sets ``base_model``, which is ``mlp`` for ``mlp_lite``
too) and, with no such attribute, strips ``_lite`` from Triton's model name; ``chains.variant``
says ``full`` or ``lite``. So an SLO on ``mlp`` counts every request for ``mlp``, degraded to lite
or not: degrading is a remediation, and the SLO is the user's promise, which the lite variant must
keep too. Rows whose ``model`` is the Triton name ``mlp_lite`` (a chain from another source that
kept it) are counted for ``mlp`` as well, so no request escapes its SLO by its spelling; an SLO
on ``mlp_lite`` is refused when the config loads (:class:`~warden.alerting.slo.SloSpec`).

Good events: availability, ``error = 0``; latency, ``error = 0 AND latency_s <= threshold``
(an error is bad whatever its latency). Chains with a NULL latency are bad for latency SLOs.

Query plan: ``WHERE model IN (?, ?) AND ts >= ? AND ts < ?`` is served by the store's own
``chains_model_ts`` index on ``(model, ts)`` (a range scan per model name, no table scan), so
no index is added here; :meth:`StoreChainsSli.plan` shows SQLite's plan for tests and doubt.
"""

from __future__ import annotations

import math
from typing import Any

from warden.alerting.slo import SloSpec
from warden.store import Store

__all__ = ["LITE_SUFFIX", "StoreChainsSli", "model_names"]

LITE_SUFFIX = "_lite"
"""Triton's name for a model's lite variant is ``<model>_lite`` (DESIGN naming contract)."""

_WHERE = "model IN (?, ?) AND ts >= ? AND ts < ?"
_AVAILABILITY = f"SELECT COUNT(*), COALESCE(SUM(error = 0), 0) FROM chains WHERE {_WHERE}"
_LATENCY = (f"SELECT COUNT(*), COALESCE(SUM(error = 0 AND latency_s <= ?), 0) FROM chains "
            f"WHERE {_WHERE}")


def model_names(model: str) -> tuple[str, str]:
    """The ``chains.model`` values that count for an SLO on ``model``: it and its lite name."""
    return model, model + LITE_SUFFIX


class StoreChainsSli:
    """An :class:`~warden.alerting.slo.SliSource` over :class:`Store`'s ``chains``.

    Args:
        store: the engine's store or a ``readonly=True`` one in another process; its lock
            serialises the reads with the engine's writes on that connection.

    A window that is not a finite ``start < end`` counts nothing, and is counted in
    :attr:`rejected_windows` (a NaN from a broken clock must not read as "no errors").
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rejected_windows = 0

    def _sql(self, slo: SloSpec, start: float, end: float) -> tuple[str, tuple[Any, ...]]:
        names = model_names(slo.model)
        if slo.kind == "availability":
            return _AVAILABILITY, (*names, start, end)
        return _LATENCY, (slo.latency_threshold_s, *names, start, end)

    def counts(self, slo: SloSpec, start: float, end: float) -> tuple[float, float]:
        """``(good, total)`` requests for ``slo.model`` (any variant) with ``start <= ts < end``."""
        if not (math.isfinite(start) and math.isfinite(end)) or start >= end:
            self.rejected_windows += 1
            return 0.0, 0.0
        sql, args = self._sql(slo, start, end)
        row = self.store.query(sql, args).iloc[0]
        total, good = float(row.iloc[0]), float(row.iloc[1])
        return good, total

    def plan(self, slo: SloSpec) -> str:
        """SQLite's query plan for ``slo``'s count (it names the index it uses)."""
        sql, args = self._sql(slo, 0.0, 1.0)
        df = self.store.query("EXPLAIN QUERY PLAN " + sql, args)
        return "\n".join(str(d) for d in df["detail"])
