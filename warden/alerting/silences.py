"""Silences with expiry, stored in SQLite so the CLI, the API and the engine share them.

Why stored: an on-call engineer silences from a shell (``warden alerts silence add``) while the
engine runs in another process; the engine must see it at its next flush. A silence mutes every
alert whose labels match all its matchers while ``starts_at <= now < ends_at``; expiring a
silence sets ``ends_at`` to now (it is kept, as Alertmanager keeps expired silences, for audit).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from warden.alerting import AlertingError
from warden.alerting.matchers import Matcher, MatcherError, matches_all, parse_matcher

__all__ = ["Silence", "SilenceError", "SilenceStore", "parse_duration"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_silences_ends ON alert_silences(ends_at);
"""
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class SilenceError(AlertingError, ValueError):
    """A silence that cannot be made: no matchers, bad duration, unknown id."""


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` or plain seconds -> seconds (> 0)."""
    s = text.strip().lower()
    try:
        total = float(s)
    except ValueError:
        total, num = 0.0, ""
        for ch in s:
            if ch.isdigit() or ch == ".":
                num += ch
            elif ch in _UNITS and num:
                total += float(num) * _UNITS[ch]
                num = ""
            else:
                raise SilenceError(f"bad duration {text!r} (want e.g. 90s, 15m, 2h, 1d)") from None
        if num:
            raise SilenceError(f"bad duration {text!r}: number without unit")
    if not total > 0:
        raise SilenceError(f"duration must be > 0, got {text!r}")
    return total


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and matches_all(self.matchers, labels)

    def to_dict(self, now: float) -> dict[str, object]:
        return {"id": self.id, "matchers": [m.to_dict() for m in self.matchers],
                "startsAt": self.starts_at, "endsAt": self.ends_at, "createdBy": self.created_by,
                "comment": self.comment, "state": self.state(now)}


class SilenceStore:
    """CRUD over ``alert_silences``; safe to share between threads (one lock)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._lock:
            conn.executescript(_SCHEMA)

    def add(self, matchers: Sequence[Matcher | str], *, now: float, duration_s: float,
            created_by: str = "", comment: str = "", starts_at: float | None = None) -> Silence:
        try:
            ms = tuple(m if isinstance(m, Matcher) else parse_matcher(m) for m in matchers)
        except MatcherError as exc:
            raise SilenceError(str(exc)) from exc
        if not ms:
            raise SilenceError("a silence needs at least one matcher")
        if not duration_s > 0:
            raise SilenceError(f"duration must be > 0, got {duration_s}")
        start = now if starts_at is None else starts_at
        sil = Silence(uuid.uuid4().hex[:12], ms, start, start + duration_s, created_by, comment)
        with self._lock:
            self._conn.execute(
                "INSERT INTO alert_silences VALUES (?,?,?,?,?,?,?)",
                (sil.id, json.dumps([m.to_dict() for m in ms]), sil.starts_at, sil.ends_at,
                 created_by, comment, now))
        return sil

    def expire(self, silence_id: str, *, now: float) -> Silence:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE alert_silences SET ends_at = MIN(ends_at, ?) WHERE id = ?",
                (now, silence_id))
        if cur.rowcount == 0:
            raise SilenceError(f"no silence with id {silence_id!r}")
        sil = self.get(silence_id)
        assert sil is not None
        return sil

    def get(self, silence_id: str) -> Silence | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment "
                "FROM alert_silences WHERE id = ?", (silence_id,)).fetchone()
        return self._row(row) if row else None

    def list(self, *, now: float | None = None, include_expired: bool = True) -> list[Silence]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment "
                "FROM alert_silences ORDER BY starts_at, id").fetchall()
        out = [self._row(r) for r in rows]
        if not include_expired and now is not None:
            out = [s for s in out if s.ends_at > now]
        return out

    def muting(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the silences that mute ``labels`` at ``now``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM alert_silences"
                " WHERE starts_at <= ? AND ends_at > ?", (now, now)).fetchall()
        return [s.id for s in map(self._row, rows) if s.mutes(labels, now)]

    @staticmethod
    def _row(row: tuple) -> Silence:  # type: ignore[type-arg]
        ms = tuple(Matcher(d["name"], d["op"], d["value"]) for d in json.loads(row[1]))
        return Silence(row[0], ms, row[2], row[3], row[4], row[5])
