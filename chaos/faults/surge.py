"""Traffic surge: an extra open-loop load generator at ``factor`` x ``rate`` until reverted.

Open loop (``serving.loadgen``) so the surge does not politely slow down when the fleet does,
which is what real users do not do either. The generator lives in the runner's process: if the
runner dies, so does the surge, so a ledger cleanup has nothing left to stop.
"""

from __future__ import annotations

from chaos.errors import FaultUnavailable
from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["TrafficSurge"]


class TrafficSurge(Fault):
    """Send ``rate * factor`` requests per second of ``model`` to the router (or ``replica``)."""

    def __init__(self, target: Target, *, rate: float = 20.0, factor: float = 3.0,
                 model: str = "synth", replica: str | None = None, seed: int = 7) -> None:
        super().__init__(target)
        if rate <= 0 or factor <= 0:
            raise ValueError("rate and factor must be > 0")
        self.url = target.replica(replica).url if replica else target.router_url
        self.rate, self.factor, self.model, self.seed = rate, factor, model, seed
        self._gen: object | None = None

    def available(self) -> str | None:
        return None if self.url else "no router_url in target and no replica given"

    def inject(self) -> None:
        from serving.loadgen import LoadGenerator, LoadProfile

        if self._gen is not None:
            return
        if not self.url:
            raise FaultUnavailable(self.available() or "")
        gen = LoadGenerator(self.url, LoadProfile(kind="constant", rate=self.rate * self.factor),
                            {self.model: 1.0}, seed=self.seed, timeout_s=5.0)
        gen.start()
        self._gen = gen

    def revert(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            gen.stop()  # type: ignore[attr-defined]

    def describe(self) -> str:
        return f"traffic surge {self.rate * self.factor:g}/s of {self.model} to {self.url}"
