"""Resolve ``module:name`` providers and check their arguments before anything runs.

As chaostoolkit-lib's ``validate_python_activity``: import the module, find the callable, and
bind the YAML arguments to its signature (``inspect.signature(fn).bind``), so a misspelt or
missing argument is an :class:`~chaos.errors.ExperimentError` naming the file and the activity,
raised before the first fault touches the fleet. A callable that declares a ``target``
parameter gets the :class:`~chaos.target.Target` passed in; faults always take it first.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from chaos.errors import ActivityFailed, ExperimentError, FaultUnavailable
from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["build_fault", "call_provider", "resolve", "validate_call"]


def resolve(provider: str, where: str = "") -> Callable[..., Any]:
    """``"pkg.mod:name"`` -> the object; errors name ``where`` (file and activity)."""
    module_name, _, attr = provider.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExperimentError(f"{where}: cannot import module {module_name!r}: {exc}") from exc
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise ExperimentError(f"{where}: module {module_name!r} has no {attr!r}") from None
    if not callable(fn):
        raise ExperimentError(f"{where}: {provider} is not callable")
    return fn  # type: ignore[no-any-return]


def _takes_target(fn: Callable[..., Any]) -> bool:
    try:
        return "target" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def validate_call(fn: Callable[..., Any], arguments: dict[str, Any], where: str) -> None:
    """Bind ``arguments`` (and ``target`` if declared) to ``fn``'s signature, or raise."""
    if "target" in arguments:
        raise ExperimentError(f"{where}: 'target' is passed by the runner, not an argument")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"{where}: cannot inspect {fn!r}: {exc}") from exc
    extra = {"target": None} if "target" in sig.parameters else {}
    try:
        sig.bind(**extra, **arguments)
    except TypeError as exc:
        raise ExperimentError(f"{where}: bad arguments {sorted(arguments)}: {exc}; "
                              f"signature is {sig}") from exc


def call_provider(fn: Callable[..., Any], arguments: dict[str, Any], target: Target) -> Any:
    """Run a probe or action; anything it raises becomes ``ActivityFailed``."""
    try:
        if _takes_target(fn):
            return fn(target=target, **arguments)
        return fn(**arguments)
    except ActivityFailed:
        raise
    except Exception as exc:  # user code: wrap, keep the cause
        raise ActivityFailed(f"{getattr(fn, '__name__', fn)}: {type(exc).__name__}: {exc}") \
            from exc


def build_fault(provider: str, arguments: dict[str, Any], target: Target, where: str) -> Fault:
    """Resolve, validate and construct a fault; constructor ``ValueError`` names ``where``."""
    cls = resolve(provider, where)
    if not (isinstance(cls, type) and issubclass(cls, Fault)):
        raise ExperimentError(f"{where}: {provider} is not a chaos Fault class")
    validate_call(cls, arguments, where)
    try:
        return cls(target, **arguments)
    except (ValueError, TypeError, FaultUnavailable) as exc:
        raise ExperimentError(f"{where}: {exc}") from exc
