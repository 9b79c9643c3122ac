"""What every page shares: the read-only store, the sidebar, the time window, error guards.

Why a guard around every section: the dashboard runs beside an engine that may not have created
a table yet, and beside parts still being built; a missing table or a bad row must become a
message that says what to do, never a traceback. With auto-refresh on, the page body runs
inside ``st.fragment`` so that a refresh re-runs the body (re-reading the store) without
rebuilding the sidebar; with it off (the default) the body runs plainly, which costs the browser
less per view.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.queries import latest_ts
from dashboard.settings import DashboardSettings, resolve_settings
from dashboard.sources import SourceMissing
from warden.store import Store, StoreError

__all__ = ["RANGES", "PageContext", "guarded", "run_page", "to_datetime"]

logger = logging.getLogger("warden.dashboard")

#: Sidebar choices: label -> seconds (None = everything in the store).
RANGES: dict[str, float | None] = {
    "Last 15 min": 900.0, "Last 1 h": 3600.0, "Last 6 h": 21600.0, "Last 24 h": 86400.0,
    "All": None,
}
#: Values of the ``range`` URL query parameter.
RANGE_PARAMS: dict[str, str] = {"15m": "Last 15 min", "1h": "Last 1 h", "6h": "Last 6 h",
                                "24h": "Last 24 h", "all": "All"}
REFRESH_CHOICES: tuple[int, ...] = (2, 5, 10, 30, 60)


@dataclass(frozen=True)
class PageContext:
    """What a page body gets: the store, the paths, and the window ``[start, end)``.

    ``end`` is just after the newest data in the store, not the wall clock: a replayed or
    seeded store shows its data, and a live one shows the last moments.
    """

    store: Store
    settings: DashboardSettings
    start: float
    end: float
    latest: float

    @property
    def span_s(self) -> float:
        return self.end - self.start


def to_datetime(ts: Any) -> Any:
    """Unix seconds (scalar or Series) to UTC datetimes for plotting."""
    return pd.to_datetime(ts, unit="s", utc=True)


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> Store:
    # One read-only connection per store path, shared by sessions (Store serialises on a lock).
    return Store(path, readonly=True)


def guarded(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one section; turn missing data and errors into messages. Returns ``fn``'s result."""
    try:
        return fn(*args, **kwargs)
    except SourceMissing as exc:
        st.info(str(exc))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            table = str(exc).rsplit(":", 1)[-1].strip()
            st.info(f"{what}: the store has no `{table}` table yet. It appears once the engine "
                    "(`warden up`) has written that kind of data.")
        else:
            logger.exception("dashboard section %s failed", what)
            st.warning(f"{what}: the store could not be read ({exc}); try again in a moment.")
    except Exception as exc:  # noqa: BLE001 -- a page must never show a traceback
        logger.exception("dashboard section %s failed", what)
        st.warning(f"{what} could not be shown: {type(exc).__name__}: {exc}")
    return None


def _sidebar(settings: DashboardSettings) -> tuple[float | None, float | None]:
    sb = st.sidebar
    sb.caption(f"Store: `{settings.db_path}`")
    # ?range=24h in the URL picks the initial window (shareable links, and the benchmark)
    wanted = RANGE_PARAMS.get(str(st.query_params.get("range", "")), "Last 1 h")
    label = sb.selectbox("Time range", list(RANGES), index=list(RANGES).index(wanted),
                         key="warden_range")
    refresh = sb.toggle("Auto-refresh", value=False, key="warden_refresh")
    every = sb.select_slider("Refresh every (s)", options=list(REFRESH_CHOICES), value=5,
                             key="warden_refresh_s", disabled=not refresh)
    return RANGES[label], (float(every) if refresh else None)


def _window(store: Store, range_s: float | None) -> tuple[float, float, float] | None:
    latest = latest_ts(store)
    if latest is None:
        return None
    end = latest + 1e-3  # windows are [start, end): keep the newest point
    if range_s is None:
        first = store.query("SELECT MIN(ts) AS ts FROM samples")["ts"].iloc[0]
        cand = [float(first)] if first is not None and not pd.isna(first) else []
        for table in ("chains", "gpu_readings"):
            v = store.query(f"SELECT MIN(ts) AS ts FROM {table}")["ts"].iloc[0]
            if v is not None and not pd.isna(v):
                cand.append(float(v))
        start = min(cand) if cand else latest - 3600.0
    else:
        start = end - range_s
    return start, end, latest


def run_page(title: str, body: Callable[[PageContext], None]) -> None:
    """Title, store, sidebar, then ``body`` in an (optionally auto-refreshing) fragment."""
    settings = resolve_settings(sys.argv[1:])
    st.title(title)
    try:
        store = _open_store(str(settings.db_path))
    except (StoreError, sqlite3.Error) as exc:
        st.info(f"No Warden store to read yet: {exc}. Start the lab with `warden up`, or point "
                "the dashboard at a store with `warden dashboard --db PATH` (or `$WARDEN_DB`).")
        return
    range_s, every = _sidebar(settings)

    def fragment() -> None:
        win = guarded("Store", _window, store, range_s)
        if win is None:
            st.info("The store is empty: no samples, traces or GPU readings yet. Once the lab "
                    "(`warden up`) has run for a few seconds, data appears here.")
            return
        start, end, latest = win
        st.caption(f"Window: {to_datetime(start):%Y-%m-%d %H:%M:%S} to "
                   f"{to_datetime(latest):%Y-%m-%d %H:%M:%S} UTC (newest data in the store)")
        ctx = PageContext(store=store, settings=settings, start=start, end=end, latest=latest)
        guarded(title, body, ctx)

    if every is None:
        fragment()  # a fragment costs the browser ~0.2 CPU s per view; only refresh needs one
    else:
        st.fragment(fragment, run_every=every)()
