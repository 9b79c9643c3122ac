""":class:`LocalFleet`: drives the lab's real Triton replicas (``serving.fleet.Fleet``) and router.

Why both: replica count and restarts are process operations on the fleet; weights and the
variant split live in the router (``serving.router``), changed through its admin API. Every
replica of the local fleet serves every model, so ``scale(model, n)`` scales the whole fleet and
``set_weights(model, ...)`` moves the router's per-replica weight (the router has one weight per
replica, not per model). Health comes from the router: healthy and not ejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from remediation.changes import FleetState, ModelState
from remediation.errors import ActuatorError

if TYPE_CHECKING:
    from serving.fleet import Fleet
    from serving.router_client import RouterAdmin

__all__ = ["LocalFleet"]


class LocalFleet:
    """Actuator over a live :class:`~serving.fleet.Fleet` and its router's admin API."""

    name = "local"

    def __init__(self, fleet: Fleet, admin: RouterAdmin) -> None:
        self.fleet = fleet
        self.admin = admin

    def _models(self) -> list[str]:
        return list(self.fleet.config.models)

    def _check_model(self, model: str) -> None:
        if model not in self._models():
            raise ActuatorError(f"fleet serves no model {model!r}; serves {self._models()}")

    def _router(self) -> dict:
        from serving.router_client import RouterAdminError

        try:
            return self.admin.state()
        except RouterAdminError as exc:
            raise ActuatorError(str(exc)) from exc

    def _sync_router(self) -> None:
        from serving.router_client import RouterAdminError

        try:
            self.admin.sync_replicas({r.name: r.url for r in self.fleet.replicas})
        except RouterAdminError as exc:
            raise ActuatorError(f"router did not follow the fleet: {exc}") from exc

    # -- Actuator -------------------------------------------------------------------------------

    def replicas(self, model: str) -> int:
        self._check_model(model)
        return len(self.fleet.replicas)

    def scale(self, model: str, n: int) -> None:
        """Start or stop replicas until there are ``n``; blocks until new ones are ready."""
        self._check_model(model)
        if n < 1:
            raise ActuatorError(f"refusing to scale {model} to {n}")
        try:
            self.fleet.scale(n)
        except Exception as exc:  # a replica that failed to start: name it, keep the engine up
            raise ActuatorError(f"scale {model} to {n} failed: {exc}") from exc
        self._sync_router()

    def set_weights(self, model: str, weights: Mapping[str, float]) -> None:
        self._check_model(model)
        from serving.router_client import RouterAdminError

        try:
            self.admin.set_weights({r: float(w) for r, w in weights.items()})
        except RouterAdminError as exc:
            raise ActuatorError(str(exc)) from exc

    def set_variant(self, model: str, variant: str, fraction: float) -> None:
        self._check_model(model)
        if variant != "lite":
            raise ActuatorError(f"only the 'lite' variant can take a share, not {variant!r}")
        from serving.router_client import RouterAdminError

        try:
            self.admin.set_variant_split(model, float(fraction))
        except RouterAdminError as exc:
            raise ActuatorError(str(exc)) from exc

    def restart(self, replica: str) -> None:
        try:
            self.fleet.restart(replica)
        except KeyError as exc:
            raise ActuatorError(str(exc)) from exc
        except Exception as exc:
            raise ActuatorError(f"restart {replica} failed: {exc}") from exc

    def state(self) -> FleetState:
        router = self._router()
        names = {r.name for r in self.fleet.replicas}
        routed = [r for r in router.get("replicas", []) if r["name"] in names]
        weights = {r["name"]: float(r["weight"]) for r in routed}
        hung = {r.name for r in self.fleet.replicas if r.hung or not r.running}
        healthy = tuple(sorted(r["name"] for r in routed
                               if r.get("healthy", True) and not r.get("ejected", False)
                               and r["name"] not in hung))
        split = router.get("variant_split", {})
        return FleetState(
            models={m: ModelState(replicas=len(names), healthy=len(healthy), weights=weights,
                                  healthy_replicas=healthy,
                                  lite_fraction=float(split.get(m, 0.0)))
                    for m in self._models()},
            # the slowest of the recent starts, stopped replicas' included (Fleet says why)
            cold_start_s=max(self.fleet.recent_cold_starts, default=float("nan")),
        )
