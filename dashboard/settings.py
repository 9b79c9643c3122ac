"""Where the dashboard finds its data: the store, Warden's home, the chaos journals, the lab.

Precedence, as everywhere in Warden: an argument after ``--`` on the ``streamlit run`` command
line, then an environment variable, then the default from :class:`warden.config.WardenConfig`.
The environment variables are named here (the lead may move them to ``warden.environment``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WARDEN_DB", "WARDEN_DASHBOARD_HOME", "DashboardSettings", "resolve_settings"]

WARDEN_DB = "WARDEN_DB"
"""Path of the SQLite store the dashboard reads (read-only)."""

WARDEN_DASHBOARD_HOME = "WARDEN_DASHBOARD_HOME"
"""Warden's home for the dashboard (``lab.json``, ``chaos/``); default: the store's directory."""


@dataclass(frozen=True)
class DashboardSettings:
    """Resolved paths; ``home`` holds ``lab.json`` and the ``chaos/`` journals."""

    db_path: Path
    home: Path

    @property
    def chaos_dir(self) -> Path:
        return self.home / "chaos"

    @property
    def lab_state_path(self) -> Path:
        return self.home / "lab.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dashboard", add_help=False)
    p.add_argument("--db", default=None)
    p.add_argument("--home", default=None)
    return p


def resolve_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> DashboardSettings:
    """Settings from ``argv`` (the script's arguments) and ``environ``; unknown args ignored.

    Why ignore unknown arguments: under pytest's AppTest the process's argv is pytest's own.
    """
    env = os.environ if environ is None else environ
    args, _ = _parser().parse_known_args(list(argv or ()))
    db = args.db or env.get(WARDEN_DB)
    home_arg = args.home or env.get(WARDEN_DASHBOARD_HOME)
    if db is None:
        from warden.config import WardenConfig  # lazy: pulls in serving's config models
        from warden.environment import WARDEN_HOME

        cfg = WardenConfig(home=Path(env[WARDEN_HOME])) if env.get(WARDEN_HOME) else \
            WardenConfig()
        db_path = cfg.db_path
        home = Path(home_arg) if home_arg else cfg.home
    else:
        db_path = Path(db)
        home = Path(home_arg) if home_arg else db_path.parent
    return DashboardSettings(db_path=db_path.expanduser(), home=home.expanduser())
