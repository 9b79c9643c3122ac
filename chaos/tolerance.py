"""Tolerances: does a probe's value match what the steady state allows?

As in Chaos Toolkit's ``hypothesis.py``, the check dispatches on the *tolerance's* type with
:func:`functools.singledispatch`, so a new kind of tolerance is one registered function:

* ``bool``: the value must equal it (``true`` means "the probe says yes");
* ``int``/``float``: the value must equal it;
* a two-item list ``[low, high]``: an inclusive numeric range (``null`` leaves a side open);
* a string: the value's text must equal it;
* a mapping with ``type``: ``range`` (``min``/``max``), ``regex`` (``pattern``, matched with
  ``re.search`` on ``str(value)``) or ``jsonpath`` (``path`` like ``$.a.b[0]``, then ``expect``
  compared with the same rules, or only presence when ``expect`` is absent).

Every check returns ``(ok, why)`` so a journal can say *why* a hypothesis failed, not only that
it did. A NaN value never passes a numeric tolerance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import singledispatch
from typing import Any

__all__ = ["check_tolerance", "jsonpath_lite", "validate_tolerance"]

_MISSING = object()
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def jsonpath_lite(value: Any, path: str) -> Any:
    """Follow ``$.a.b[0]['c d']`` into nested dicts and lists; a missing step gives a sentinel.

    Only child steps and indices: enough for probe outputs, and no dependency for it.
    Raises ``ValueError`` on a path that does not parse.
    """
    if not path.startswith("$"):
        raise ValueError(f"jsonpath must start with '$', got {path!r}")
    rest, pos, steps = path[1:], 0, []
    while pos < len(rest):
        m = _PATH_TOKEN.match(rest, pos)
        if m is None:
            raise ValueError(f"jsonpath {path!r}: cannot parse at {rest[pos:]!r}")
        pos = m.end()
        key, index, quoted = m.group(1), m.group(2), m.group(3)
        steps.append(int(index) if index is not None else (key if key is not None else quoted))
    cur = value
    for step in steps:
        if isinstance(step, int):
            if not isinstance(cur, Sequence) or isinstance(cur, str) or step >= len(cur):
                return _MISSING
        elif not isinstance(cur, Mapping) or step not in cur:
            return _MISSING
        cur = cur[step]
    return cur


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@singledispatch
def check_tolerance(tolerance: Any, value: Any) -> tuple[bool, str]:
    """``(ok, why)`` for ``value`` against ``tolerance``; unknown tolerance types raise."""
    raise TypeError(f"unsupported tolerance type {type(tolerance).__name__}: {tolerance!r}")


@check_tolerance.register
def _(tolerance: bool, value: Any) -> tuple[bool, str]:
    ok = isinstance(value, bool) and value is tolerance
    return ok, f"value {value!r} {'is' if ok else 'is not'} {tolerance}"


@check_tolerance.register(int)
@check_tolerance.register(float)
def _(tolerance: float, value: Any) -> tuple[bool, str]:
    x = _number(value)
    ok = x is not None and not isinstance(value, bool) and x == float(tolerance)
    return ok, f"value {value!r} {'==' if ok else '!='} {tolerance}"


@check_tolerance.register
def _(tolerance: str, value: Any) -> tuple[bool, str]:
    ok = str(value) == tolerance
    return ok, f"value {value!r} {'==' if ok else '!='} {tolerance!r}"


def _range(low: Any, high: Any, value: Any) -> tuple[bool, str]:
    x = _number(value)
    if x is None or isinstance(value, bool):
        return False, f"value {value!r} is not a number (range [{low}, {high}])"
    ok = (low is None or x >= float(low)) and (high is None or x <= float(high))
    return ok, f"value {x:g} {'within' if ok else 'outside'} [{low}, {high}]"


@check_tolerance.register(list)
@check_tolerance.register(tuple)
def _(tolerance: Sequence[Any], value: Any) -> tuple[bool, str]:
    if len(tolerance) != 2:
        raise TypeError(f"a range tolerance has two items [low, high], got {list(tolerance)!r}")
    return _range(tolerance[0], tolerance[1], value)


@check_tolerance.register(dict)
def _(tolerance: Mapping[str, Any], value: Any) -> tuple[bool, str]:
    kind = tolerance.get("type")
    if kind == "range":
        return _range(tolerance.get("min"), tolerance.get("max"), value)
    if kind == "regex":
        ok = re.search(tolerance["pattern"], str(value)) is not None
        return ok, f"value {str(value)[:80]!r} {'matches' if ok else 'does not match'} " \
                   f"/{tolerance['pattern']}/"
    if kind == "jsonpath":
        found = jsonpath_lite(value, tolerance["path"])
        if found is _MISSING:
            return False, f"{tolerance['path']} not found"
        if "expect" not in tolerance:
            return True, f"{tolerance['path']} present"
        ok, why = check_tolerance(tolerance["expect"], found)
        return ok, f"{tolerance['path']}: {why}"
    raise TypeError(f"tolerance mapping needs type range|regex|jsonpath, got {kind!r}")


def validate_tolerance(tolerance: Any) -> None:
    """Raise ``ValueError`` naming the problem if ``tolerance`` can never be checked.

    Runs the check once against a dummy value, which exercises the same dispatch, so a bad
    tolerance fails at load time rather than mid-experiment.
    """
    if isinstance(tolerance, Mapping):
        kind = tolerance.get("type")
        needs = {"range": (), "regex": ("pattern",), "jsonpath": ("path",)}
        if kind not in needs:
            raise ValueError(f"tolerance type must be one of {sorted(needs)}, got {kind!r}")
        for key in needs[kind]:
            if key not in tolerance:
                raise ValueError(f"{kind} tolerance needs {key!r}")
        if kind == "regex":
            try:
                re.compile(tolerance["pattern"])
            except re.error as exc:
                raise ValueError(f"bad regex {tolerance['pattern']!r}: {exc}") from exc
        if kind == "jsonpath":
            jsonpath_lite({}, tolerance["path"])
            if "expect" in tolerance:
                validate_tolerance(tolerance["expect"])
        return
    try:
        check_tolerance(tolerance, 0)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
