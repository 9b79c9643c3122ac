"""Every environment variable Warden reads, in one place (as OpenTelemetry's
``environment_variables`` module does), so none hides in the code.

Precedence everywhere: explicit arguments, then these variables, then built-in defaults.
"""

from __future__ import annotations

__all__ = ["WARDEN_CONFIG", "WARDEN_HOME"]

WARDEN_CONFIG = "WARDEN_CONFIG"
"""Path of the ``warden.yaml`` to load when ``--config`` is not given."""

WARDEN_HOME = "WARDEN_HOME"
"""Directory for the lab's state: the SQLite store, replica logs, models (default ``.warden``)."""
