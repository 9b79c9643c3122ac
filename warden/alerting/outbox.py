"""The durable notification outbox: written before sent, retried until 2xx or dead.

Why: a notification that lives only in memory is lost when the engine dies mid-send. Each
notification is a row in ``alert_outbox`` (same SQLite file as the rest of Warden) before any
byte goes out; :class:`OutboxDispatcher` sends due rows, marks a row delivered only on a 2xx,
and otherwise schedules a retry with exponential backoff and jitter. A row older than
``dead_after_s`` (or refused with a non-retryable status) becomes a dead letter, kept for
``warden alerts outbox``. A crash between send and mark re-sends the row after restart with the
same ``idempotency_key``: delivery is at least once, and receivers deduplicate on the key.

A failing target is backed off as a whole (its waiting rows wait with the failed one, so a dead
receiver gets one probe per backoff step, not one request per row); when it answers 2xx again,
its waiting rows are made due at once, so a backlog drains as soon as the receiver is back.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from warden.alerting.webhook import DeliveryResult, Notifier

__all__ = [
    "Backoff",
    "Outbox",
    "OutboxDispatcher",
    "OutboxItem",
    "State",
]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    target TEXT NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_attempt_at REAL,
    last_status INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox(state, next_attempt_at);
"""
_COLS = ("id, idempotency_key, target, group_key, status, body, created_at, state, attempts, "
         "next_attempt_at, last_attempt_at, last_status, last_error, delivered_at")


class State:
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    idempotency_key: str
    target: str
    group_key: str
    status: str
    body: str
    created_at: float
    state: str
    attempts: int
    next_attempt_at: float
    last_attempt_at: float | None
    last_status: int | None
    last_error: str
    delivered_at: float | None


class Outbox:
    """The ``alert_outbox`` table. One lock around the connection: safe across threads."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._lock:
            conn.executescript(_SCHEMA)

    def enqueue(self, *, key: str, target: str, group_key: str, status: str, body: str,
                now: float) -> bool:
        """Write a notification; ``False`` if one with this key exists (kept as it was)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO alert_outbox (idempotency_key, target, group_key, status,"
                " body, created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?)",
                (key, target, group_key, status, body, now, now))
        return cur.rowcount == 1

    def due(self, now: float, *, limit: int = 100) -> list[OutboxItem]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLS} FROM alert_outbox WHERE state = 'pending' AND "
                "next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (now, limit)).fetchall()
        return [OutboxItem(*r) for r in rows]

    def next_due_at(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT MIN(next_attempt_at) FROM alert_outbox "
                                     "WHERE state = 'pending'").fetchone()
        return row[0]

    def mark_delivered(self, item_id: int, *, now: float, status_code: int | None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE alert_outbox SET state='delivered', attempts=attempts+1, delivered_at=?,"
                " last_attempt_at=?, last_status=?, last_error='' WHERE id=? AND state='pending'",
                (now, now, status_code, item_id))

    def mark_failed(self, item_id: int, *, now: float, result: DeliveryResult,
                    next_attempt_at: float, dead: bool) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE alert_outbox SET state=?, attempts=attempts+1, last_attempt_at=?,"
                " last_status=?, last_error=?, next_attempt_at=? WHERE id=? AND state='pending'",
                (State.DEAD if dead else State.PENDING, now, result.status_code,
                 result.error[:500], next_attempt_at, item_id))

    def expedite(self, target: str, *, now: float) -> int:
        """Make every waiting row of ``target`` due now (its receiver is answering again)."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE alert_outbox SET next_attempt_at=? WHERE target=? AND state='pending' "
                "AND next_attempt_at > ?", (now, target, now))
        return cur.rowcount

    def defer(self, target: str, *, until: float) -> int:
        """Push every waiting row of ``target`` to ``until`` at the earliest."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE alert_outbox SET next_attempt_at=? WHERE target=? AND state='pending' "
                "AND next_attempt_at < ?", (until, target, until))
        return cur.rowcount

    def expire(self, *, now: float, dead_after_s: float) -> int:
        """Turn pending rows older than ``dead_after_s`` into dead letters."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE alert_outbox SET state='dead', last_error = last_error || ' (expired)'"
                " WHERE state='pending' AND created_at <= ?", (now - dead_after_s,))
        return cur.rowcount

    def items(self, *, state: str | None = None, limit: int = 50) -> list[OutboxItem]:
        q = f"SELECT {_COLS} FROM alert_outbox"
        args: tuple[object, ...] = ()
        if state:
            q += " WHERE state = ?"
            args = (state,)
        with self._lock:
            rows = self._conn.execute(q + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [OutboxItem(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT state, COUNT(*) FROM alert_outbox GROUP BY state").fetchall()
        out = {State.PENDING: 0, State.DELIVERED: 0, State.DEAD: 0}
        out.update({s: n for s, n in rows})
        return out


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": half fixed, half random, capped.

    ``delay(n) = min(max_s, base_s * factor**(n-1)) * (0.5 + 0.5 * rand())`` for attempt ``n``.
    The jitter spreads retries of many rows so a recovering receiver is not hit all at once.
    """

    base_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.factor < 1 or self.max_s < self.base_s:
            raise ValueError(f"bad backoff {self}")

    def delay(self, attempt: int, rand: float) -> float:
        raw = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        return raw * (0.5 + 0.5 * rand)


class OutboxDispatcher:
    """Sends due outbox rows through the notifier named by each row's ``target``.

    ``run_once(now)`` is one pass (tests drive it with a fake clock); ``start()`` runs passes in
    a thread, waking at the next due row or when :meth:`wake` is called after an enqueue.
    """

    def __init__(self, outbox: Outbox, notifiers: Mapping[str, Notifier], *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 backoff: Backoff = Backoff(), dead_after_s: float = 3600.0,
                 registry: CollectorRegistry | None = None, max_idle_s: float = 1.0) -> None:
        if dead_after_s <= 0:
            raise ValueError("dead_after_s must be > 0")
        self.outbox = outbox
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.rng = rng or random.Random()
        self.backoff = backoff
        self.dead_after_s = dead_after_s
        self.max_idle_s = max_idle_s
        self._blocked_until: dict[str, float] = {}  # target-level backoff
        self._failures: dict[str, int] = {}  # consecutive failures per target
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        reg = registry if registry is not None else CollectorRegistry()
        self._attempts = Counter("warden_alert_outbox_attempts", "Delivery attempts by result",
                                 ["target", "result"], registry=reg)
        self._dead = Counter("warden_alert_outbox_dead_letters", "Rows turned dead letters",
                             ["target"], registry=reg)
        self._pending = Gauge("warden_alert_outbox_pending", "Rows waiting for delivery",
                              registry=reg)

    def run_once(self, now: float | None = None) -> int:
        """One pass over due rows; returns how many were delivered. Never raises."""
        now = self.clock() if now is None else now
        delivered = 0
        try:
            self.outbox.expire(now=now, dead_after_s=self.dead_after_s)
            failing: set[str] = set()
            for item in self.outbox.due(now):
                if item.target in failing:
                    continue  # do not hammer a target that just failed in this pass
                until = self._blocked_until.get(item.target, 0.0)
                if until > now:  # a row written while its target is backed off waits with it
                    self.outbox.defer(item.target, until=until)
                    failing.add(item.target)
                    continue
                delivered += self._send(item, failing)
                if self._stop.is_set():
                    break
            self._pending.set(self.outbox.counts()[State.PENDING])
        except Exception:  # the loop must not die; the rows stay and are retried
            log.exception("outbox pass failed")
        return delivered

    def _send(self, item: OutboxItem, failing: set[str]) -> int:
        notifier = self.notifiers.get(item.target)
        if notifier is None:
            result = DeliveryResult(False, True, None, f"no notifier for target {item.target!r}")
        else:
            try:
                result = notifier.deliver(item.body.encode(), idempotency_key=item.idempotency_key)
            except Exception as exc:  # a notifier bug must not kill the dispatcher
                log.exception("notifier %s raised", item.target)
                result = DeliveryResult(False, True, None, f"notifier raised {type(exc).__name__}")
        now = self.clock()
        if result.ok:
            self._blocked_until.pop(item.target, None)
            self._failures.pop(item.target, None)
            self.outbox.mark_delivered(item.id, now=now, status_code=result.status_code)
            self._attempts.labels(item.target, "delivered").inc()
            if self.outbox.expedite(item.target, now=now):
                self._wake.set()
            return 1
        failing.add(item.target)
        attempt = item.attempts + 1
        dead = not result.retryable or now - item.created_at >= self.dead_after_s
        streak = self._failures.get(item.target, 0) + 1 if result.retryable else 0
        next_at = now + self.backoff.delay(max(attempt, streak), self.rng.random())
        self.outbox.mark_failed(item.id, now=now, result=result, next_attempt_at=next_at,
                                dead=dead)
        if result.retryable:
            # The whole target waits with this row: one probe per backoff, not one per row.
            self._failures[item.target] = streak
            self._blocked_until[item.target] = next_at
            self.outbox.defer(item.target, until=next_at)
        self._attempts.labels(item.target, "retryable" if result.retryable else "refused").inc()
        if dead:
            self._dead.labels(item.target).inc()
        log.warning("delivery to %s failed (attempt %d, key %s): %s%s", item.target, attempt,
                    item.idempotency_key, result.error, " -> dead letter" if dead else "")
        return 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="warden-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.run_once()
            nxt = self.outbox.next_due_at()
            wait = self.max_idle_s if nxt is None else min(self.max_idle_s,
                                                           max(0.0, nxt - self.clock()))
            if wait > 0:
                self._wake.wait(wait)
