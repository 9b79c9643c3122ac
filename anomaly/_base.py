"""The streaming detector contract shared by every detector (PyOD's shape, made streaming).

Why a base class: the input hygiene (NaN, duplicate and out-of-order timestamps), the calibrated
score range and the save/restore format must be identical for every detector, so that the engine
and the shared test suite can treat them alike. Subclasses implement only ``_fit``, ``_score``,
``_state`` and ``_load``.

Contract:
* ``__init__`` stores and validates hyper-parameters only (``ValueError`` naming the bad one).
* ``fit(history) -> self``; ``history`` may be empty or ``None`` (purely online use).
* ``update(ts, value) -> float`` in ``[0, 1]``, higher is more anomalous; uses only points up to
  ``ts`` (no look-ahead). A NaN value (or a vector with a NaN) updates nothing and returns the
  last score (0.0 before any). A timestamp equal to or before the last accepted one is ignored,
  counted in ``rejected_`` and returns the last score.
* Learned state ends in ``_``; ``state_dict()`` is JSON-able and ``load_state_dict`` restores it so
  that future scores are identical.

Errors: ``ValueError`` for bad hyper-parameters or a state of another detector.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
import pandas as pd

__all__ = ["StreamingDetector", "as_history", "check_float", "check_int"]


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Validate an integer hyper-parameter, naming it in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high if high is not None else 'inf'}], got {value}")
    return int(value)


def check_float(name: str, value: object, low: float, high: float | None = None, *, open_low: bool = False) -> float:
    """Validate a float hyper-parameter, naming it in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < low or (open_low and v == low) or (high is not None and v > high):
        raise ValueError(f"{name} must be in {'(' if open_low else '['}{low}, {high}], got {value}")
    return v


def as_history(history: Any) -> tuple[np.ndarray, np.ndarray]:
    """Turn a history into ``(ts, values)``: ``ts`` shape ``(n,)`` seconds, values ``(n,)`` or ``(n, d)``.

    Accepts ``None``, a pandas Series indexed by time, a DataFrame with ``ts``/``timestamp`` and
    ``value`` columns (the store's shape) or with one column per feature, or a ``(ts, values)``
    pair. Rows are sorted by time; duplicate timestamps keep the first; NaN rows are dropped.
    """
    if history is None:
        return np.empty(0), np.empty(0)
    if isinstance(history, tuple) and len(history) == 2:
        ts = np.asarray(history[0], dtype=float)
        vals = np.asarray(history[1], dtype=float)
    elif isinstance(history, pd.Series):
        ts = _to_seconds(history.index)
        vals = history.to_numpy(dtype=float)
    elif isinstance(history, pd.DataFrame):
        df = history
        tcol = next((c for c in ("ts", "timestamp", "time") if c in df.columns), None)
        if tcol is not None:
            ts = _to_seconds(pd.Index(df[tcol]))
            rest = [c for c in df.columns if c != tcol]
        else:
            ts = _to_seconds(df.index)
            rest = list(df.columns)
        if "value" in rest:
            vals = df["value"].to_numpy(dtype=float)
        else:
            vals = df[rest].to_numpy(dtype=float)
    else:
        raise ValueError(f"history must be None, a Series, a DataFrame or (ts, values), got {type(history).__name__}")
    if len(ts) == 0:
        return np.empty(0), vals[:0]
    ok = np.isfinite(ts) & (np.isfinite(vals) if vals.ndim == 1 else np.isfinite(vals).all(axis=1))
    ts, vals = ts[ok], vals[ok]
    order = np.argsort(ts, kind="stable")
    ts, vals = ts[order], vals[order]
    keep = np.concatenate([[True], np.diff(ts) > 0]) if len(ts) else np.empty(0, dtype=bool)
    return ts[keep], vals[keep]


def _to_seconds(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(index):
        dt = pd.DatetimeIndex(index)
        if dt.tz is not None:
            dt = dt.tz_convert("UTC").tz_localize(None)
        return dt.as_unit("ns").asi8 / 1e9
    return np.asarray(index, dtype=float)


class StreamingDetector:
    """Base of every detector: input hygiene, save/restore, calibrated score in ``[0, 1]``."""

    #: registry name, set by subclasses
    name: str = "base"
    #: whether ``update`` takes a vector (multivariate) rather than a float
    multivariate: bool = False

    def __init__(self) -> None:
        self.last_ts_: float | None = None
        self.last_score_: float = 0.0
        self.rejected_: int = 0
        self.n_seen_: int = 0

    # -- public contract -------------------------------------------------------------------
    def fit(self, history: Any = None) -> Self:
        """Learn from history (may be empty), then continue online from its last timestamp."""
        self._reset()
        ts, vals = as_history(history)
        self._fit(ts, vals)
        if len(ts):
            self.last_ts_ = float(ts[-1])
        return self

    def update(self, ts: float, value: float | np.ndarray) -> float:
        """Score one point at time ``ts`` (seconds); see the module docstring for bad input."""
        ts = float(ts)
        last = self.last_ts_
        if last is not None and not ts > last:
            self.rejected_ += 1
            return self.last_score_
        if self.multivariate:
            vec = np.asarray(value, dtype=float).ravel()
            if not np.isfinite(vec).all():
                return self.last_score_
            score = self._score(ts, vec)
        else:
            v = float(value)
            if v - v != 0.0:  # NaN or +-inf (inf - inf is NaN)
                return self.last_score_
            score = self._score(ts, v)
        self.last_ts_ = ts
        self.n_seen_ += 1
        if not 0.0 <= score <= 1.0:
            score = 0.0 if score != score else (1.0 if score > 1.0 else 0.0)
        self.last_score_ = score
        return score

    def score_series(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Convenience: ``update`` over arrays, returns scores shape ``(n,)``."""
        upd = self.update
        return np.fromiter((upd(t, v) for t, v in zip(ts.tolist(), values.tolist())), float, len(ts))

    def state_dict(self) -> dict[str, Any]:
        """JSON-able learned state, hyper-parameters included so a restore can be checked."""
        return {
            "detector": self.name,
            "params": self.get_params(),
            "last_ts": self.last_ts_,
            "last_score": self.last_score_,
            "rejected": self.rejected_,
            "n_seen": self.n_seen_,
            "state": self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Self:
        """Restore ``state_dict()`` output; raises ``ValueError`` for another detector's state."""
        if state.get("detector") != self.name:
            raise ValueError(f"state is for detector {state.get('detector')!r}, not {self.name!r}")
        self._reset()
        self.last_ts_ = state["last_ts"]
        self.last_score_ = float(state["last_score"])
        self.rejected_ = int(state["rejected"])
        self.n_seen_ = int(state["n_seen"])
        self._load(state["state"])
        return self

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (the public, non-underscore attributes set in ``__init__``)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    # -- for subclasses -----------------------------------------------------------------------
    def _reset(self) -> None:
        self.last_ts_ = None
        self.last_score_ = 0.0
        self.rejected_ = 0
        self.n_seen_ = 0

    def _fit(self, ts: np.ndarray, values: np.ndarray) -> None:
        """Default: warm up by streaming the history through ``_score``."""
        for t, v in zip(ts.tolist(), values.tolist()):
            self._score(t, np.asarray(v) if self.multivariate else v)

    def _score(self, ts: float, value: Any) -> float:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
