"""Every environment variable Warden reads, in one place (as OpenTelemetry's
``environment_variables`` module does), so none hides in the code.

Precedence everywhere: explicit arguments, then these variables, then built-in defaults.
"""

from __future__ import annotations

__all__ = ["WARDEN_CONFIG", "WARDEN_DB", "WARDEN_HOME",
           "WARDEN_TRITON_ACCESS_TOKEN", "WARDEN_WEBHOOK_BEARER_TOKEN",
           "WARDEN_WEBHOOK_HMAC_SECRET"]

WARDEN_CONFIG = "WARDEN_CONFIG"
"""Path of the ``warden.yaml`` to load when ``--config`` is not given."""

WARDEN_HOME = "WARDEN_HOME"
"""Directory for the lab's state: the SQLite store, replica logs, models (default ``.warden``)."""

WARDEN_DB = "WARDEN_DB"
"""SQLite store path for CLI commands and the dashboard when ``--db`` is not given."""

WARDEN_TRITON_ACCESS_TOKEN = "WARDEN_TRITON_ACCESS_TOKEN"
"""Token for Triton's restricted APIs (model load/unload) when chaos targets a remote fleet."""

WARDEN_WEBHOOK_HMAC_SECRET = "WARDEN_WEBHOOK_HMAC_SECRET"
"""HMAC secret the alert delivery worker signs webhooks with."""

WARDEN_WEBHOOK_BEARER_TOKEN = "WARDEN_WEBHOOK_BEARER_TOKEN"
"""Bearer token the alert delivery worker sends to webhook receivers."""
