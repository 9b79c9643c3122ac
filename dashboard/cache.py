"""Store reads cached for a few seconds, keyed on the store, the reader and its arguments.

Why: a page's reads are keyed on its time window, and the window ends at the newest data in
the store (``ui._window``). While no new data arrives (a replayed store, a paused lab, several
people looking at once, a page revisited) the same window means the same answer, so a page
view costs only its rendering; as soon as data arrives the window, hence the key, changes and
the reads run afresh. The TTL bounds how long any answer is kept even so, and entries are
bounded in number. Only the reads that cost (a day of samples, chains, GPU readings) go
through here; cheap seeks do not.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import streamlit as st

from warden.store import Store

__all__ = ["CACHE_TTL_S", "cached"]

CACHE_TTL_S = 10.0


def _resolve(ref: str) -> Callable[..., Any]:
    module, qualname = ref.split(":", 1)
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@st.cache_data(ttl=CACHE_TTL_S, max_entries=256, show_spinner=False)
def _run(db: str, ref: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...],
         _store: Store) -> Any:
    # ``db`` keys the store (``_store`` itself is not hashed); ``ref`` names the reader
    return _resolve(ref)(_store, *args, **dict(kwargs))


def cached(store: Store, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(store, *args, **kwargs)``, from the cache when called alike in the last seconds.

    ``fn`` is a module-level function or a ``Store`` method taken from the class (e.g.
    ``Store.anomalies``); arguments must be hashable by Streamlit (numbers, strings, lists).
    Returns a copy, so callers may change it.
    """
    ref = f"{fn.__module__}:{fn.__qualname__}"
    return _run(str(store.path), ref, tuple(args), tuple(sorted(kwargs.items())), store)
