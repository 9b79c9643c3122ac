"""LocalFleet's state over stand-ins for the fleet and the router's admin API (the real ones are
exercised by the closed-loop and lab-scaling tests): what the autoscaler reads as cold start."""

from __future__ import annotations

import math
from dataclasses import dataclass

from remediation.actuators.local import LocalFleet


@dataclass
class _Replica:
    name: str
    started_at: float
    cold_start_s: float
    hung: bool = False
    running: bool = True
    url: str = "http://127.0.0.1:1"


class _Fleet:
    def __init__(self, replicas: list[_Replica]) -> None:
        self.replicas = replicas

        class config:  # noqa: N801 -- shaped like FleetConfig
            models = ["synth"]

        self.config = config


class _Admin:
    def __init__(self, fleet: _Fleet) -> None:
        self.fleet = fleet

    def state(self) -> dict:
        return {"replicas": [{"name": r.name, "weight": 1.0, "healthy": True}
                             for r in self.fleet.replicas], "variant_split": {}}


def test_cold_start_remembers_replicas_since_scaled_in():
    """A scale-in keeps the first replicas (fast, alone on an idle host); the slow starts under
    load must still count, or the predictive lead shrinks and capacity is let go too early."""
    fleet = _Fleet([_Replica("r0", 0.0, 6.0), _Replica("r1", 0.0, 6.5)])
    act = LocalFleet(fleet, _Admin(fleet))  # type: ignore[arg-type]
    assert act.state().cold_start_s == 6.5
    fleet.replicas += [_Replica("r2", 50.0, 12.0), _Replica("r3", 50.0, math.nan)]  # r3 starting
    assert act.state().cold_start_s == 12.0
    fleet.replicas = fleet.replicas[:2]  # scaled in to the first two
    assert act.state().cold_start_s == 12.0
    assert act.state().models["synth"].replicas == 2


def test_cold_start_forgets_all_but_the_recent_starts():
    fleet = _Fleet([_Replica("r0", 0.0, 20.0)])
    act = LocalFleet(fleet, _Admin(fleet))  # type: ignore[arg-type]
    assert act.state().cold_start_s == 20.0
    for i in range(LocalFleet.COLD_STARTS_KEPT):  # r1 restarted again and again, 5 s each
        fleet.replicas = [_Replica("r0", 0.0, 20.0), _Replica("r1", 100.0 + i, 5.0)]
        act.state()
    fleet.replicas = [_Replica("r1", 999.0, 5.0)]
    assert act.state().cold_start_s == 5.0  # r0's slow start aged out


def test_no_cold_start_measured_yet_is_nan():
    fleet = _Fleet([_Replica("r0", 0.0, math.nan)])
    assert math.isnan(LocalFleet(fleet, _Admin(fleet)).state().cold_start_s)  # type: ignore[arg-type]
