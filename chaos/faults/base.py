"""The fault contract and a small HTTP helper shared by the HTTP faults.

A fault is constructed with the :class:`~chaos.target.Target` plus keyword parameters (its
typed signature is the contract: the runner binds the YAML arguments against it before the run).
``inject()`` and ``revert()`` are idempotent: injecting twice leaves one fault, reverting a fault
never injected (or already reverted, or reverted by a cleanup after a crash) is a no-op. That is
what makes "always revert on exit" safe to do from ``finally`` blocks, signal handlers and a
separate cleanup process without knowing how far the run got.

``state()`` returns what a *different* process needs to revert (pids of helper processes); the
ledger stores it and hands it back through ``restore(state)``.
"""

from __future__ import annotations

import abc
from typing import Any

import httpx

from chaos.errors import ActivityFailed
from chaos.target import Target

__all__ = ["Fault", "http_call"]

HTTP_TIMEOUT_S = 5.0


def http_call(method: str, url: str, *, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,),
              timeout: float = HTTP_TIMEOUT_S) -> Any:
    """One JSON request; a transport error or an unexpected status raises ``ActivityFailed``."""
    try:
        resp = httpx.request(method, url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    if resp.status_code not in ok:
        raise ActivityFailed(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        return resp.json() if resp.content else None
    except ValueError:
        return resp.text


class Fault(abc.ABC):
    """Base of every fault. Subclasses take ``target`` first, then keyword-only parameters."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def available(self) -> str | None:
        """``None`` when the fault can run here, else the reason it cannot (for a skip)."""
        return None

    @abc.abstractmethod
    def inject(self) -> None:
        """Start the fault; idempotent."""

    @abc.abstractmethod
    def revert(self) -> None:
        """Undo the fault; idempotent, and safe when ``inject`` never ran."""

    def state(self) -> dict[str, Any]:
        """What another process needs to revert this fault (saved in the ledger)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state` from the ledger before a cleanup's :meth:`revert`."""

    def describe(self) -> str:
        return type(self).__name__
