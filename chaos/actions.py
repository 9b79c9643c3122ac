"""Actions an experiment can run in its method or rollbacks (``type: action``).

``wait_until`` is the one rollbacks need most: after a fault is reverted some states come back
on their own time (a GPU cools with its thermal time constant), and the steady state should be
checked once they have, not before. It polls a probe until its tolerance holds, bounded.
"""

from __future__ import annotations

import time
from typing import Any

from chaos.activity import call_provider, resolve
from chaos.errors import ActivityFailed
from chaos.target import Target
from chaos.tolerance import check_tolerance, validate_tolerance

__all__ = ["wait_until"]


def wait_until(target: Target, *, probe: str, tolerance: Any, arguments: dict[str, Any] | None
               = None, timeout_s: float = 30.0, interval_s: float = 0.5) -> float:
    """Poll ``probe`` until its value meets ``tolerance``; returns the seconds waited.

    Raises ``ActivityFailed`` with the last value when ``timeout_s`` passes first.
    """
    validate_tolerance(tolerance)
    fn = resolve(probe, f"wait_until({probe})")
    start = time.monotonic()
    why = ""
    while True:
        value = call_provider(fn, dict(arguments or {}), target)
        ok, why = check_tolerance(tolerance, value)
        if ok:
            return round(time.monotonic() - start, 3)
        if time.monotonic() - start > timeout_s:
            raise ActivityFailed(f"wait_until {probe}: not met in {timeout_s:g} s ({why})")
        time.sleep(interval_s)
