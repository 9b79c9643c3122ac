"""The autoscaler's signals for one model, read back from the store's Triton samples.

Why demand and not only utilisation: a saturated replica's utilisation caps at 1, so at twice
capacity it reads the same as at 1.05x, and a utilisation-only scaler (the HPA on CPU) climbs one
step per cold start. The requests nobody served yet show the rest: Triton's pending-request gauge
grows by exactly the demand the fleet cannot serve, so ``demand = served + d(pending)/dt``.

Series read (written by :class:`collectors.triton.TritonMetricsCollector`):
``triton_request_success_per_second`` (served load), ``triton_compute_infer_duration_seconds``
(busy time per request: utilisation = served x busy, exact with batching off),
``triton_queue_duration_seconds`` and ``triton_pending_requests``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from remediation.autoscaler import Signals

__all__ = ["backlog_growth_rps", "store_signals"]


def store_signals(store: Any, model: str, now: float, window_s: float = 3.0) -> Signals:
    """Model utilisation (mean over replicas), queue time, served load and demand."""

    def read(name: str) -> pd.DataFrame:
        return store.series(name, {"model": model}, now - window_s, now + 0.01)

    rate, infer = read("triton_request_success_per_second"), read(
        "triton_compute_infer_duration_seconds")
    if rate.empty or infer.empty:
        return Signals(None)
    queue, pending = read("triton_queue_duration_seconds"), read("triton_pending_requests")
    busy = []
    load = 0.0
    for replica, g in rate.groupby("replica"):
        r = float(g.groupby("variant")["value"].last().sum()) if "variant" in g else float(
            g["value"].iloc[-1])
        load += r
        gi = infer[infer["replica"] == replica]
        if gi.empty:
            continue
        busy.append(min(r * float(gi["value"].iloc[-1]), 1.5))
    if not busy:
        return Signals(None)
    q = float(queue["value"].mean()) if not queue.empty else None
    growth = backlog_growth_rps(pending)
    demand = load + max(growth, 0.0) if growth is not None else None
    return Signals(float(np.mean(busy)), queue_s=q, load_rps=load, demand_rps=demand)


def backlog_growth_rps(pending: pd.DataFrame) -> float | None:
    """How fast the pending requests grow, summed over replicas (requests/s).

    Per replica, the slope between its first and last sample in the window; a replica with a
    single sample (just started) adds nothing. ``None`` without any usable replica.
    """
    if pending.empty:
        return None
    total, seen = 0.0, False
    for _, g in pending.groupby(["replica", "variant"] if "variant" in pending else "replica"):
        g = g.sort_values("ts")
        dt = float(g["ts"].iloc[-1] - g["ts"].iloc[0])
        if len(g) < 2 or dt <= 0:
            continue
        total += float(g["value"].iloc[-1] - g["value"].iloc[0]) / dt
        seen = True
    return total if seen else None
