"""One way to open Warden's SQLite database, so every process agrees on its settings.

WAL mode lets the engine write while the dashboard and the CLI read from other processes;
``busy_timeout`` makes a reader wait out a checkpoint instead of failing. Each component owns
its own tables and creates them with ``CREATE TABLE IF NOT EXISTS`` through :func:`open_db`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_db"]

BUSY_TIMEOUT_MS = 5_000


def open_db(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in WAL mode (read-write) or as a read-only URI.

    ``check_same_thread=False`` because the engine hands one connection to its writer thread;
    callers still serialise writes themselves.
    """
    if readonly:
        conn = sqlite3.connect(
            f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False
        )
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn
