"""Every safety limit on remediation, enforced in this one module.

Why one place: the executor, the autoscaler and rollbacks all go through
:class:`remediation.applier.Applier`, which asks :meth:`Guards.check` before anything moves; a
limit added here holds for every path, and a reviewer reads one file to know what Warden may do.

Checks, in order (the first refusal wins and is audited with its reason):

1. kill switch (config flag, :meth:`Guards.kill`, or a file that exists) refuses everything;
2. idempotency: a key the audit already holds is never applied again;
3. missing data never reduces capacity (no scale in, no restore from lite, no weight given
   back) - KEDA's long-standing complaint (kedacore/keda#965) is a scale-in on a silent source;
4. min/max replicas: a scale beyond a bound is clamped to it, refused if that changes nothing;
5. never below ``min_healthy`` healthy replicas (scale in, drain, restart of a healthy one);
6. the share of a model's traffic degraded to lite is capped (clamped to the cap);
7. cooldown per (kind, target): a second change of the same kind to the same target within
   ``cooldown_s`` is refused, unless it belongs to the same runbook execution;
8. at most ``max_actions_per_hour`` applied actions in any sliding hour.

Rollbacks skip 7 and 8 (undoing a bad change must not wait), never 1, 4, 5, 6. Dry-run mode
lets a change pass the checks and marks the decision ``dry_run`` so nothing real moves.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from remediation.changes import Change, FleetState

__all__ = ["Decision", "GuardConfig", "Guards", "HistoryEntry"]

HOUR_S = 3600.0


class GuardConfig(BaseModel):
    """The limits (the ``remediation.guards`` section of ``warden.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(8, ge=1)
    min_healthy: int = Field(1, ge=1)
    max_degraded_fraction: float = Field(0.5, ge=0.0, le=1.0)
    cooldown_s: float = Field(60.0, ge=0.0)
    max_actions_per_hour: int = Field(30, ge=0)
    kill_switch: bool = False
    kill_switch_file: Path | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> GuardConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


@dataclass(frozen=True)
class Decision:
    """The guards' verdict. ``change`` may be clamped; ``escalate`` marks refusals a human must
    see (a bound was hit), as opposed to routine ones (cooldown, duplicate)."""

    allowed: bool
    reason: str
    change: Change
    dry_run: bool = False
    escalate: bool = False
    guard: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    ts: float
    kind: str
    target: str
    execution: str


class Guards:
    """Stateful guard layer: remembers applied actions for cooldowns and the hourly cap.

    Args:
        config: the limits.
        clock: Unix seconds; injected so tests move time without sleeping.
        seen: ``key -> bool``, whether the audit already holds an idempotency key.
    """

    def __init__(self, config: GuardConfig, *, clock: Callable[[], float],
                 seen: Callable[[str], bool] = lambda key: False) -> None:
        self.config = config
        self.clock = clock
        self.seen = seen
        self._killed = config.kill_switch
        self._history: deque[HistoryEntry] = deque()
        self.refusals: dict[str, int] = {}

    # -- kill switch -----------------------------------------------------------------------------

    def kill(self, on: bool = True) -> None:
        self._killed = on

    @property
    def killed(self) -> bool:
        f = self.config.kill_switch_file
        return self._killed or (f is not None and f.exists())

    # -- history ----------------------------------------------------------------------------------

    def load_history(self, entries: Iterable[HistoryEntry]) -> None:
        """Seed cooldowns and the hourly count from the audit, so a restart resets neither."""
        for e in sorted(entries, key=lambda e: e.ts):
            self._history.append(e)
        self._trim(self.clock())

    def note_applied(self, change: Change, execution: str) -> None:
        self._history.append(HistoryEntry(self.clock(), change.kind, change.target, execution))

    def _trim(self, now: float) -> None:
        while self._history and self._history[0].ts < now - HOUR_S:
            self._history.popleft()

    def actions_last_hour(self) -> int:
        self._trim(self.clock())
        return len(self._history)

    # -- the check --------------------------------------------------------------------------------

    def _refuse(self, guard: str, reason: str, change: Change, *, escalate: bool = False
                ) -> Decision:
        self.refusals[guard] = self.refusals.get(guard, 0) + 1
        return Decision(False, f"{guard}: {reason}", change, escalate=escalate, guard=guard)

    def check(self, change: Change, state: FleetState, *, key: str, execution: str = "",
              data_fresh: bool = True, rollback: bool = False) -> Decision:
        """Decide whether ``change`` may run against ``state`` now."""
        cfg, now = self.config, self.clock()
        if self.killed:
            return self._refuse("kill_switch", "remediation is switched off", change)
        if self.seen(key):
            return self._refuse("idempotency", f"key {key} already applied", change)
        if change.reduces_capacity and not data_fresh:
            return self._refuse("missing_data", "metrics are silent; holding current state",
                                change)
        model = state.models.get(change.model)
        if change.kind == "scale":
            if model is None:
                return self._refuse("unknown_model", f"no model {change.model!r}", change)
            want = int(change.args["replicas"])
            clamped = min(max(want, cfg.min_replicas), cfg.max_replicas)
            if clamped == model.replicas:
                bound = "max" if want > model.replicas else "min"
                return self._refuse("replica_bounds", f"{change.model} already at {bound} "
                                    f"({model.replicas}); wanted {want}", change, escalate=True)
            if clamped != want:
                change = replace(change, args={**change.args, "replicas": clamped},
                                 reduces_capacity=clamped < model.replicas)
            removed = max(model.replicas - clamped, 0)
            if removed and model.healthy - removed < cfg.min_healthy:
                return self._refuse("min_healthy", f"scaling {change.model} to {clamped} could "
                                    f"leave fewer than {cfg.min_healthy} healthy", change,
                                    escalate=True)
        elif change.kind == "weights" and model is not None:
            weights = {**model.weights, **change.args["weights"]}
            serving = [r for r in model.healthy_replicas if weights.get(r, 0.0) > 0]
            if model.healthy_replicas and len(serving) < cfg.min_healthy:
                return self._refuse("min_healthy", f"weights {dict(change.args['weights'])} "
                                    f"would leave {len(serving)} healthy replica(s) serving",
                                    change, escalate=True)
        elif change.kind == "restart" and model is not None:
            replica = change.args["replica"]
            if replica in model.healthy_replicas and model.healthy - 1 < cfg.min_healthy:
                return self._refuse("min_healthy", f"restarting {replica} would leave fewer "
                                    f"than {cfg.min_healthy} healthy", change, escalate=True)
        elif change.kind == "variant":
            frac = float(change.args["fraction"])
            if not math.isfinite(frac) or frac < 0:
                return self._refuse("bad_change", f"fraction {frac}", change)
            if frac > cfg.max_degraded_fraction:
                current = model.lite_fraction if model else 0.0
                if current >= cfg.max_degraded_fraction:
                    return self._refuse("degrade_cap", f"{change.model} already degraded "
                                        f"{current:.0%} (cap {cfg.max_degraded_fraction:.0%})",
                                        change, escalate=True)
                change = replace(change, args={**change.args,
                                               "fraction": cfg.max_degraded_fraction})
        if not rollback:
            self._trim(now)
            for e in self._history:
                if (e.kind == change.kind and e.target == change.target
                        and now - e.ts < cfg.cooldown_s and (not execution or
                                                             e.execution != execution)):
                    return self._refuse("cooldown", f"{change.kind} on {change.target} "
                                        f"{now - e.ts:.0f}s ago (cooldown {cfg.cooldown_s:.0f}s)",
                                        change)
            if len(self._history) >= cfg.max_actions_per_hour:
                return self._refuse("rate_limit", f"{len(self._history)} actions in the last hour"
                                    f" (max {cfg.max_actions_per_hour})", change, escalate=True)
        return Decision(True, "ok", change, dry_run=cfg.dry_run)
