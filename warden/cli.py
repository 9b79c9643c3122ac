"""The ``warden`` command line.

Each package contributes its own subcommands through a ``register(subparsers)`` function in its
``cli`` module, listed in :data:`COMMAND_MODULES`; this module only assembles them, so a package's
commands live beside the code they drive.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "anomaly.cli",
    "chaos.cli",
    "collectors.cli",
    "dashboard.cli",
    "collectors.trace_cli",
    "remediation.cli",
    "serving.router.cli",
    "warden.alerting.cli",
    "warden.lab_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden",
        description="Observability-first SRE platform with auto-remediation for Triton fleets.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
