"""The chaos package's exceptions, one tree.

Errors::

    ChaosError(Exception)
     ├── ExperimentError(ValueError)   bad experiment file: the message names file and key
     ├── ActivityFailed(RuntimeError)  a probe, action or fault raised; wraps the cause
     ├── FaultUnavailable(RuntimeError) a fault cannot run on this target (says why)
     └── TargetError(ValueError)       a bad ``--target`` description

Why a tree: the runner turns ``ActivityFailed`` into a journal entry and goes on to the
rollbacks, while an ``ExperimentError`` stops before anything touches the fleet.
"""

from __future__ import annotations

__all__ = ["ActivityFailed", "ChaosError", "ExperimentError", "FaultUnavailable", "TargetError"]


class ChaosError(Exception):
    """Base of every error raised by :mod:`chaos`."""


class ExperimentError(ChaosError, ValueError):
    """The experiment is invalid; raised before anything is injected."""


class ActivityFailed(ChaosError, RuntimeError):
    """A probe, action or fault failed while running (``__cause__`` holds the original)."""


class FaultUnavailable(ChaosError, RuntimeError):
    """The fault cannot run on this target or machine; the message is the reason."""


class TargetError(ChaosError, ValueError):
    """A target description is unreadable or incomplete."""
