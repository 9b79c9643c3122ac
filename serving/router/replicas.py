"""Per-replica state: weight, health, passive ejection, outstanding count and a peak EWMA.

Why one object per replica: the hot path touches exactly one of these per attempt (increment,
decrement, observe), so keeping the counters as plain attributes avoids dict look-ups and locks.
All of it runs on the router's event loop thread; nothing here is thread-safe, on purpose.

Time comes from an injected ``clock`` (monotonic seconds) so ejection windows and EWMA decay can be
tested without sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from serving.router.config import EjectionConfig

__all__ = ["Clock", "ReplicaPool", "ReplicaState"]

Clock = Callable[[], float]


class ReplicaState:
    """Mutable state of one upstream replica."""

    __slots__ = (
        "check_failures",
        "check_successes",
        "consecutive_failures",
        "ejected",
        "ejected_until",
        "ejections",
        "errors",
        "healthy",
        "last_ejection_end",
        "name",
        "outstanding",
        "requests",
        "rtt_estimate",
        "rtt_updated_at",
        "url",
        "weight",
    )

    def __init__(self, name: str, url: str, weight: float, *, healthy: bool, now: float,
                 default_rtt_s: float = 0.0) -> None:
        self.name = name
        self.url = url
        self.weight = weight
        self.healthy = healthy
        self.ejected = False
        self.ejected_until = 0.0
        self.ejections = 0
        self.last_ejection_end = -math.inf
        self.consecutive_failures = 0
        self.check_failures = 0
        self.check_successes = 0
        self.outstanding = 0
        self.rtt_estimate = default_rtt_s
        self.rtt_updated_at = now
        self.requests = 0
        self.errors = 0

    @property
    def available(self) -> bool:
        """Whether this replica may take new requests (healthy, not ejected, weight > 0)."""
        return self.healthy and not self.ejected and self.weight > 0

    def ewma(self, now: float, decay_s: float) -> float:
        """Current latency estimate, decayed towards zero since the last update (as Linkerd does).

        Decaying on read is what lets a once-slow replica be tried again after a while instead of
        being starved forever by a single bad observation.
        """
        elapsed = now - self.rtt_updated_at
        if elapsed > 0:
            self.rtt_estimate *= math.exp(-elapsed / decay_s)
            self.rtt_updated_at = now
        return self.rtt_estimate

    def ewma_peek(self, now: float, decay_s: float) -> float:
        """The decayed estimate without storing it: safe to call from a scraping thread."""
        elapsed = now - self.rtt_updated_at
        return self.rtt_estimate * math.exp(-elapsed / decay_s) if elapsed > 0 else self.rtt_estimate

    def observe_rtt(self, rtt_s: float, now: float, decay_s: float) -> None:
        """Peak EWMA update: a higher observation replaces the estimate at once, a lower one blends."""
        if rtt_s > self.rtt_estimate:
            self.rtt_estimate = rtt_s
        else:
            elapsed = max(0.0, now - self.rtt_updated_at)
            decay = math.exp(-elapsed / decay_s)
            self.rtt_estimate = self.rtt_estimate * decay + rtt_s * (1.0 - decay)
        self.rtt_updated_at = now


class ReplicaPool:
    """The set of replicas and the rules that move them between available and not.

    Passive ejection follows Envoy: ``consecutive_failures`` in a row eject a replica for
    ``base_ejection_s * n`` seconds (n = ejections so far, counted again from 1 once a replica has
    stayed in for ``max_ejection_s``), capped at ``max_ejection_s``. It is re-admitted only when the
    time has passed *and* an active health check then succeeds (with active checks off, when the
    time has passed).
    """

    def __init__(self, ejection: EjectionConfig, clock: Clock, *, ewma_decay_s: float,
                 default_rtt_s: float = 0.0,
                 on_eject: Callable[[ReplicaState], None] | None = None) -> None:
        self.ejection = ejection
        self.clock = clock
        self.ewma_decay_s = ewma_decay_s
        self.default_rtt_s = default_rtt_s
        self.on_eject = on_eject
        self.replicas: dict[str, ReplicaState] = {}
        self.active_checks = True

    # -- membership -------------------------------------------------------------------------
    def add(self, name: str, url: str, weight: float, *, healthy: bool = True) -> ReplicaState:
        """Add a replica; raises ``KeyError`` if the name is taken."""
        if name in self.replicas:
            raise KeyError(f"replica {name!r} already exists")
        state = ReplicaState(name, url, weight, healthy=healthy, now=self.clock(),
                             default_rtt_s=self.default_rtt_s)
        self.replicas[name] = state
        return state

    def remove(self, name: str) -> ReplicaState:
        """Remove a replica; in-flight requests to it finish on their own."""
        return self.replicas.pop(name)

    def __iter__(self) -> Iterator[ReplicaState]:
        return iter(list(self.replicas.values()))

    def __len__(self) -> int:
        return len(self.replicas)

    def available(self, exclude: frozenset[str] | set[str] = frozenset()) -> list[ReplicaState]:
        """Replicas that may take a new request now, minus the ones in ``exclude``."""
        if any(r.ejected for r in self.replicas.values()):
            self._release_expired()
        return [r for r in self.replicas.values()
                if r.healthy and not r.ejected and r.weight > 0 and r.name not in exclude]

    # -- passive outlier detection -----------------------------------------------------------
    def record_success(self, replica: ReplicaState) -> None:
        """A response below 500 resets the consecutive-failure count."""
        replica.consecutive_failures = 0

    def record_failure(self, replica: ReplicaState) -> bool:
        """Count a connection failure, timeout or 5xx; eject on the threshold. True if ejected now."""
        replica.errors += 1
        replica.consecutive_failures += 1
        if replica.ejected or replica.consecutive_failures < self.ejection.consecutive_failures:
            return False
        if not self._may_eject_one_more():
            return False
        self.eject(replica)
        return True

    def _may_eject_one_more(self) -> bool:
        """Envoy's ``max_ejection_percent``, with at least one ejection always allowed."""
        ejected = sum(1 for r in self.replicas.values() if r.ejected)
        allowed = max(1, int(len(self.replicas) * self.ejection.max_ejection_percent / 100.0))
        return ejected < allowed

    def eject(self, replica: ReplicaState) -> None:
        """Take a replica out for a time that grows with each ejection (Envoy's multiplier)."""
        now = self.clock()
        if now - replica.last_ejection_end > self.ejection.max_ejection_s:
            replica.ejections = 0
        replica.ejections += 1
        duration = min(self.ejection.base_ejection_s * replica.ejections,
                       self.ejection.max_ejection_s)
        replica.ejected = True
        replica.ejected_until = now + duration
        replica.consecutive_failures = 0
        if self.on_eject is not None:
            self.on_eject(replica)

    def _release_expired(self) -> None:
        """Without active checks, an ejection simply ends when its time is up."""
        if self.active_checks:
            return
        now = self.clock()
        for r in self.replicas.values():
            if r.ejected and now >= r.ejected_until:
                self._readmit(r, now)

    def _readmit(self, replica: ReplicaState, now: float) -> None:
        replica.ejected = False
        replica.last_ejection_end = now
        replica.consecutive_failures = 0

    # -- active health checks ----------------------------------------------------------------
    def record_check(self, replica: ReplicaState, ok: bool, *, healthy_threshold: int,
                     unhealthy_threshold: int) -> None:
        """Apply one active check's result; re-admit an ejected replica whose time is up."""
        if ok:
            replica.check_failures = 0
            replica.check_successes += 1
            if replica.check_successes >= healthy_threshold:
                replica.healthy = True
                now = self.clock()
                if replica.ejected and now >= replica.ejected_until:
                    self._readmit(replica, now)
        else:
            replica.check_successes = 0
            replica.check_failures += 1
            if replica.check_failures >= unhealthy_threshold:
                replica.healthy = False
