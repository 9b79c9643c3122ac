"""``warden dashboard [--db PATH] [--port P]``: serve the Streamlit dashboard in the foreground."""

from __future__ import annotations

import argparse
import subprocess
from typing import Any

from dashboard.launch import dashboard_env, streamlit_command

__all__ = ["cmd_dashboard", "register"]

DEFAULT_PORT = 8501


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Run Streamlit until interrupted; returns its exit code."""
    from dashboard.settings import resolve_settings

    settings = resolve_settings(
        [*(["--db", args.db] if args.db else []), *(["--home", args.home] if args.home else [])])
    if not settings.db_path.exists():
        print(f"note: no store at {settings.db_path} yet; the dashboard will say so until the "
              "engine (`warden up`) creates it")
    cmd = streamlit_command(settings.db_path, port=args.port, address=args.address,
                            home=settings.home)
    print(f"dashboard on http://{args.address}:{args.port} (store {settings.db_path})")
    try:
        return subprocess.call(cmd, env=dashboard_env())
    except KeyboardInterrupt:
        return 0


def register(subparsers: Any) -> None:
    """Add ``dashboard`` to the ``warden`` command line."""
    p = subparsers.add_parser("dashboard", help="serve the Streamlit dashboard over the store")
    p.add_argument("--db", help="SQLite store (default $WARDEN_DB or <home>/warden.db)")
    p.add_argument("--home", help="Warden home with lab.json and chaos/ (default: the store's "
                                  "directory)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--address", default="127.0.0.1", help="listen address (default loopback)")
    p.set_defaults(func=cmd_dashboard)
