"""Run the router as its own process: ``python -m serving.router_process CONFIG.json PORT_FILE``.

The lab runs the router apart from the load generator and the engine so that neither steals its
event loop's time (one GIL per process), and so chaos can kill it like any other component. The
bound port is written to PORT_FILE once the router listens; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from serving.router import RouterConfig
from serving.router.server import Router
from serving.router.tracing import make_tracer_provider

__all__ = ["main"]


async def _serve(config: RouterConfig, host: str, port: int, port_file: Path,
                 otlp_url: str | None) -> None:
    provider = make_tracer_provider(otlp_endpoint=otlp_url) if otlp_url else None
    router = Router(config, CollectorRegistry(), tracer_provider=provider)
    bound = await router.start(host, port)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(bound))
    tmp.replace(port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await router.stop()
    if provider is not None:
        provider.shutdown()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(argv[0]).read_text())
    config = RouterConfig.model_validate(spec["router"])
    asyncio.run(_serve(config, spec.get("host", "127.0.0.1"), int(spec.get("port", 0)),
                       Path(argv[1]), spec.get("otlp_url")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
