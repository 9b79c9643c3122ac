"""``warden router``: run the router in the foreground until SIGINT or SIGTERM.

    warden router --replica r0=http://127.0.0.1:8000 --replica r1=http://127.0.0.1:8010 \
        --policy peak_ewma --lite-models mlp,synth --port 8080
    warden router --config warden.yaml          # its ``router:`` section, or a bare RouterConfig

Flags given on the command line win over the file. It prints one line
``warden router listening on http://HOST:PORT`` once it serves (scripts wait for it).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_config", "main", "register"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML: a router section or a bare RouterConfig")
    p.add_argument("--replica", action="append", default=[], metavar="NAME=URL[@WEIGHT]",
                   help="an upstream replica (repeatable)")
    p.add_argument("--policy", help="round_robin, least_outstanding or peak_ewma")
    p.add_argument("--lite-models", help="comma-separated models that have a <model>_lite")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--otlp-endpoint", help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop: uvloop where installed (auto), or the one named")


def register(subparsers: Any) -> None:
    """Add ``router`` to the ``warden`` command line."""
    p = subparsers.add_parser("router", help="run the KServe v2 router in front of replicas",
                              description=__doc__.splitlines()[0])
    _add_arguments(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """RouterConfig from ``--config`` then the flags; ``ValueError`` naming what is wrong."""
    from serving.router.config import RouterConfig

    data: dict[str, Any] = {}
    if args.config is not None:
        import yaml

        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping")
        data = dict(loaded.get("router", loaded))
    if args.replica:
        replicas = []
        for item in args.replica:
            name, sep, rest = item.partition("=")
            if not sep:
                raise ValueError(f"--replica {item!r}: expected NAME=URL[@WEIGHT]")
            url, _, weight = rest.partition("@")
            replicas.append({"name": name, "url": url, "weight": float(weight) if weight else 1.0})
        data["replicas"] = replicas
    if args.policy:
        data["policy"] = args.policy
    if args.lite_models:
        data["lite_models"] = [m.strip() for m in args.lite_models.split(",") if m.strip()]
    return RouterConfig.model_validate(data)


async def _serve(config: Any, host: str, port: int, otlp_endpoint: str | None) -> None:
    from prometheus_client import CollectorRegistry

    from serving.router.server import Router
    from serving.router.tracing import SERVICE_NAME
    from serving.spans import SpanRecorder

    # the lean recorder, not the SDK: a span per request is on the router's hot path
    provider = SpanRecorder(otlp_endpoint, SERVICE_NAME) if otlp_endpoint else None
    router = Router(config, CollectorRegistry(), tracer_provider=provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await router.start(host, port)
    print(f"warden router listening on {router.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await router.stop()
        if provider is not None:
            provider.shutdown()


def run(args: argparse.Namespace) -> int:
    """Entry point for ``warden router``; 2 on a bad configuration."""
    from pydantic import ValidationError

    try:
        config = build_config(args)
    except (ValueError, ValidationError, OSError) as exc:
        print(f"warden router: bad configuration: {exc}", file=sys.stderr)
        return 2
    from serving.router.thread import new_event_loop

    use_uvloop = {"auto": None, "uvloop": True, "asyncio": False}[getattr(args, "loop", "auto")]
    try:
        new_event_loop(use_uvloop).close()  # fail here, readably, if uvloop was asked for
    except ImportError:
        print("warden router: --loop uvloop but uvloop is not installed", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=lambda: new_event_loop(use_uvloop)) as runner:
        runner.run(_serve(config, args.host, args.port, args.otlp_endpoint))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serving.router.cli ...`` (same flags as ``warden router``)."""
    p = argparse.ArgumentParser(prog="warden router")
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
