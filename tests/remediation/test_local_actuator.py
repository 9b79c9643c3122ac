"""LocalFleet's state over stand-ins for the fleet and the router's admin API (the real ones are
exercised by the closed-loop and lab-scaling tests): what the autoscaler reads as cold start."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from remediation.actuators.local import LocalFleet


@dataclass
class _Replica:
    name: str
    hung: bool = False
    running: bool = True
    url: str = "http://127.0.0.1:1"


class _Fleet:
    def __init__(self, replicas: list[_Replica], cold_starts: list[float]) -> None:
        self.replicas = replicas
        self.recent_cold_starts = deque(cold_starts)

        class config:  # noqa: N801 -- shaped like FleetConfig
            models = ["synth"]

        self.config = config


class _Admin:
    def __init__(self, fleet: _Fleet) -> None:
        self.fleet = fleet

    def state(self) -> dict:
        return {"replicas": [{"name": r.name, "weight": 1.0, "healthy": True}
                             for r in self.fleet.replicas], "variant_split": {}}


def test_cold_start_is_the_slowest_recent_start_of_the_fleet():
    """Two replicas left after a scale-in, but the fleet's record of recent starts holds the
    slow ones started under load: the predictive lead must not shrink with the fleet."""
    fleet = _Fleet([_Replica("r0"), _Replica("r1")], [6.0, 6.5, 12.0, 11.0])
    state = LocalFleet(fleet, _Admin(fleet)).state()  # type: ignore[arg-type]
    assert state.cold_start_s == 12.0
    assert state.models["synth"].replicas == 2


def test_no_cold_start_measured_yet_is_nan():
    fleet = _Fleet([_Replica("r0")], [])
    act = LocalFleet(fleet, _Admin(fleet))  # type: ignore[arg-type]
    assert math.isnan(act.state().cold_start_s)
