"""A standalone outbox delivery process: ``python -m warden.alerting.worker --db X --target ...``.

Why a process of its own: delivery must survive the engine dying (and the test kills this
process with SIGKILL mid-delivery to prove no notification is lost). Secrets come from the
environment (``WARDEN_WEBHOOK_HMAC_SECRET``, ``WARDEN_WEBHOOK_BEARER_TOKEN``), never argv,
so they do not show in ``ps``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from pydantic import SecretStr

from warden.alerting.outbox import Backoff, Outbox, OutboxDispatcher
from warden.alerting.webhook import AlertmanagerPushNotifier, Notifier, WebhookNotifier
from warden.db import open_db

__all__ = ["ENV_BEARER", "ENV_HMAC", "main"]

ENV_HMAC = "WARDEN_WEBHOOK_HMAC_SECRET"
ENV_BEARER = "WARDEN_WEBHOOK_BEARER_TOKEN"


def _secret(name: str) -> SecretStr | None:
    value = os.environ.get(name)
    return SecretStr(value) if value else None


def build_notifiers(targets: Sequence[str], *, timeout_s: float) -> dict[str, Notifier]:
    """``name=url`` for webhooks, ``name=alertmanager+http://host:port`` for a push."""
    out: dict[str, Notifier] = {}
    for spec in targets:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url:
            raise SystemExit(f"bad --target {spec!r}: want NAME=URL")
        if url.startswith("alertmanager+"):
            out[name] = AlertmanagerPushNotifier(url.removeprefix("alertmanager+"),
                                                 bearer_token=_secret(ENV_BEARER),
                                                 timeout_s=timeout_s)
        else:
            out[name] = WebhookNotifier(url, hmac_secret=_secret(ENV_HMAC),
                                        bearer_token=_secret(ENV_BEARER), timeout_s=timeout_s)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m warden.alerting.worker")
    p.add_argument("--db", required=True)
    p.add_argument("--target", action="append", default=[], help="NAME=URL (repeatable)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--dead-after", type=float, default=3600.0)
    p.add_argument("--backoff-base", type=float, default=0.5)
    p.add_argument("--backoff-max", type=float, default=30.0)
    p.add_argument("--poll", type=float, default=0.2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    outbox = Outbox(open_db(args.db))
    dispatcher = OutboxDispatcher(
        outbox, build_notifiers(args.target, timeout_s=args.timeout),
        backoff=Backoff(base_s=args.backoff_base, max_s=args.backoff_max),
        dead_after_s=args.dead_after, max_idle_s=args.poll)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    dispatcher.start()
    done.wait()
    dispatcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
