"""Active health checks: ``GET /v2/health/ready`` on every replica each interval.

Why active checks alongside passive ejection: ejection only learns from traffic, so an ejected
replica gets none and could never prove itself back; the active check is the re-admission gate,
and it also catches a replica that is down while idle.
"""

from __future__ import annotations

import asyncio
import logging

from serving.router.client import UpstreamClient, UpstreamError
from serving.router.replicas import ReplicaPool, ReplicaState

__all__ = ["HEALTH_PATH", "HealthChecker"]

logger = logging.getLogger(__name__)

HEALTH_PATH = "/v2/health/ready"


class HealthChecker:
    """Runs the check loop on the router's event loop; never dies on an error."""

    def __init__(self, pool: ReplicaPool, client: UpstreamClient, *, interval_s: float,
                 timeout_s: float, healthy_threshold: int, unhealthy_threshold: int) -> None:
        self.pool = pool
        self.client = client
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.rounds = 0
        self.ready_models: list[str] = []

    async def probe(self, replica: ReplicaState) -> bool:
        """One check of one replica; True only for HTTP 200 from the server and each model.

        Triton (through PyTriton) says the *server* is ready before the models are loaded, so a
        restarted replica would be re-admitted and answer 404 "unknown model" to everything;
        the models in ``ready_models`` must each answer ``/v2/models/{m}/ready`` too.
        """
        paths = [HEALTH_PATH] + [f"/v2/models/{m}/ready" for m in self.ready_models]
        try:
            for path in paths:
                resp = await self.client.request(replica.url, "GET", path,
                                                 timeout_s=self.timeout_s)
                if resp.status != 200:
                    return False
            return True
        except (UpstreamError, OSError):
            return False

    async def check(self, replica: ReplicaState) -> bool:
        """Probe and apply the result to the pool."""
        ok = await self.probe(replica)
        self.pool.record_check(replica, ok, healthy_threshold=self.healthy_threshold,
                               unhealthy_threshold=self.unhealthy_threshold)
        return ok

    async def check_all(self) -> None:
        """Check every replica concurrently."""
        replicas = list(self.pool)
        if replicas:
            await asyncio.gather(*(self.check(r) for r in replicas))
        self.rounds += 1

    async def run(self) -> None:
        """Loop until cancelled."""
        while True:
            try:
                await self.check_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the loop die; the next round may succeed
                logger.exception("health check round failed")
            await asyncio.sleep(self.interval_s)
