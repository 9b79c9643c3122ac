"""SLOs per model and multi-window, multi-burn-rate alerts (Google SRE Workbook, ch. 5).

Why burn rates: alerting on "error ratio above the objective" pages for every blip, and
alerting on a whole month's budget pages too late. A burn rate of ``x`` spends the period's
error budget ``x`` times faster than allowed. Each tier fires when both a long and a short
window burn faster than the tier's factor: the long window makes the alert significant, the
short one makes it reset quickly once the problem stops.

Counts come from an :class:`SliSource` (``counts(slo, start, end) -> (good, total)``):
:class:`warden.alerting.sli_chains.StoreChainsSli` counts the store's request chains, the real
traffic; ``warden slo`` and the lab's :class:`~warden.alerting.service.AlertingService` use it.
:class:`SloAlerter` turns firing tiers into alerts at a bounded evaluation rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from warden.alerting import AlertingError
from warden.alerting.lifecycle import AlertTracker
from warden.alerting.slo_history import SloAlertHistory
from warden.records import Alert, Labels, freeze_labels

__all__ = [
    "DEFAULT_PERIOD_S",
    "DEFAULT_TIERS",
    "SLO_ALERTNAME",
    "BudgetStatus",
    "BurnRateTier",
    "DEFAULT_SLO_INTERVAL_S",
    "SliSource",
    "SloAlerter",
    "SloConfigError",
    "SloEvaluator",
    "SloSpec",
    "TierResult",
    "burn_rate",
    "load_slos",
]

DEFAULT_PERIOD_S = 30 * 86400.0
DEFAULT_SLO_INTERVAL_S = 10.0
SLO_ALERTNAME = "SloBudgetBurn"
"""The SLO alert's name: the ``budget-burn-overload`` runbook and the chaos suite match it."""
"""How often :class:`SloAlerter` evaluates: the shortest window is 5 m, so 10 s loses nothing."""
_H = 3600.0
logger = logging.getLogger("warden.alerting.slo")


class SloConfigError(AlertingError, ValueError):
    """A bad SLO definition; the message names the key."""


class SloSpec(BaseModel):
    """One SLO: availability (good = not an error) or latency (good = under the threshold)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    kind: Literal["availability", "latency"]
    objective: float = Field(gt=0.0, lt=1.0)
    latency_threshold_s: float | None = Field(default=None, gt=0.0)
    period_s: float = Field(default=DEFAULT_PERIOD_S, gt=0.0)

    @model_validator(mode="after")
    def _threshold(self) -> SloSpec:
        if self.kind == "latency" and self.latency_threshold_s is None:
            raise ValueError("latency SLO needs latency_threshold_s")
        if self.model.endswith("_lite"):
            # Requests are counted under the name the client asked for, whichever variant
            # served them (see sli_chains): an SLO on the lite name would count nothing.
            raise ValueError(f"model: name the requested model "
                             f"({self.model.removesuffix('_lite')!r}), not its lite variant")
        return self


@dataclass(frozen=True, slots=True)
class BurnRateTier:
    name: str
    severity: str
    factor: float
    long_window_s: float
    short_window_s: float


DEFAULT_TIERS: tuple[BurnRateTier, ...] = (
    BurnRateTier("fast", "page", 14.4, 1 * _H, 5 * 60.0),
    BurnRateTier("medium", "page", 6.0, 6 * _H, 30 * 60.0),
    BurnRateTier("slow", "ticket", 3.0, 24 * _H, 2 * _H),
    BurnRateTier("slowest", "ticket", 1.0, 72 * _H, 6 * _H),
)
"""Page at 14.4x (1 h & 5 m) and 6x (6 h & 30 m); ticket at 3x (1 d & 2 h) and 1x (3 d & 6 h)."""


class SliSource(Protocol):
    """Good and total events of ``slo``'s SLI in ``[start, end)``."""

    def counts(self, slo: SloSpec, start: float, end: float) -> tuple[float, float]: ...


def burn_rate(good: float, total: float, objective: float) -> float:
    """Error ratio over the allowed error ratio; 0 with no traffic (no evidence of burning)."""
    if total <= 0:
        return 0.0
    bad = min(max(total - good, 0.0), total)
    return (bad / total) / (1.0 - objective)


@dataclass(frozen=True, slots=True)
class TierResult:
    tier: BurnRateTier
    long_burn: float
    short_burn: float

    @property
    def firing(self) -> bool:
        return self.long_burn >= self.tier.factor and self.short_burn >= self.tier.factor


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    slo: SloSpec
    good: float
    total: float

    @property
    def sli(self) -> float | None:
        return self.good / self.total if self.total > 0 else None

    @property
    def budget_remaining(self) -> float:
        """Fraction of the period's error budget left (1 = untouched, < 0 = overspent)."""
        if self.total <= 0:
            return 1.0
        allowed = (1.0 - self.slo.objective) * self.total
        return 1.0 - (self.total - self.good) / allowed


class SloEvaluator:
    """Evaluates every SLO's tiers and budget from an :class:`SliSource` at a given time."""

    def __init__(self, slos: Sequence[SloSpec], source: SliSource, *,
                 tiers: Sequence[BurnRateTier] = DEFAULT_TIERS) -> None:
        self.slos = tuple(slos)
        self.source = source
        self.tiers = tuple(tiers)

    def tiers_for(self, slo: SloSpec, now: float) -> list[TierResult]:
        out = []
        for t in self.tiers:
            lg = burn_rate(*self.source.counts(slo, now - t.long_window_s, now), slo.objective)
            sh = burn_rate(*self.source.counts(slo, now - t.short_window_s, now), slo.objective)
            out.append(TierResult(t, lg, sh))
        return out

    def budget(self, slo: SloSpec, now: float) -> BudgetStatus:
        return BudgetStatus(slo, *self.source.counts(slo, now - slo.period_s, now))

    def conditions(self, now: float) -> dict[Labels, Labels]:
        """Firing tiers as alert conditions (labels -> annotations) for ``AlertTracker``.

        One alert per SLO and severity (the fastest firing tier of that severity speaks), so a
        page is not doubled by the 6x tier while the 14.4x one fires.
        """
        out: dict[Labels, Labels] = {}
        for slo in self.slos:
            seen: set[str] = set()
            for r in self.tiers_for(slo, now):
                if not r.firing or r.tier.severity in seen:
                    continue
                seen.add(r.tier.severity)
                budget = self.budget(slo, now)
                labels = {"alertname": SLO_ALERTNAME, "slo": slo.name,
                          "model": slo.model, "severity": r.tier.severity}
                ann = {"summary": f"{slo.name}: burning error budget {r.long_burn:.1f}x "
                                  f"({r.tier.name} tier, threshold {r.tier.factor}x)",
                       "burn_rate_long": f"{r.long_burn:.3f}",
                       "burn_rate_short": f"{r.short_burn:.3f}",
                       "windows": f"{_fmt_window(r.tier.long_window_s)}/"
                                  f"{_fmt_window(r.tier.short_window_s)}",
                       "error_budget_remaining": f"{budget.budget_remaining:.4f}"}
                out[freeze_labels(labels)] = freeze_labels(ann)
        return out


def _fmt_window(s: float) -> str:
    if s % 86400 == 0:
        return f"{int(s // 86400)}d"
    if s % 3600 == 0:
        return f"{int(s // 3600)}h"
    return f"{int(s // 60)}m"


def load_slos(section: Any) -> list[SloSpec]:
    """Validate the ``slos:`` config section (a list of mappings), naming the bad key."""
    if section is None:
        return []
    if not isinstance(section, list):
        raise SloConfigError("slos: must be a list of SLO definitions")
    out = []
    for i, item in enumerate(section):
        if not isinstance(item, Mapping):
            raise SloConfigError(f"slos[{i}]: must be a mapping")
        try:
            out.append(SloSpec.model_validate(dict(item)))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            where = f"slos[{i}].{loc}" if loc else f"slos[{i}]"
            raise SloConfigError(f"{where}: {err['msg']}") from exc
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise SloConfigError("slos: names must be unique")
    return out


class SloAlerter:
    """Evaluates an :class:`SloEvaluator` at most every ``interval_s`` and tracks its alerts.

    Why a separate rate: one evaluation is two counts per tier per SLO (16 indexed queries per
    SLO with the default tiers); the engine ticks every second, the shortest window is 5 m.

    :meth:`evaluate` returns the alerts to hand the dispatcher: those that changed state
    (firing, resolved) plus those still firing with fresh annotations (burn rates move). A
    failed evaluation (a locked or broken store) is logged and counted in :attr:`errors` and
    changes nothing: an SLO alert is neither lost nor resolved because a read failed.

    With ``history``, transitions are written to the store's ``alerts`` table and the alerts
    still firing there are restored at start: the first :meth:`evaluate` announces them again
    (so the receiver's group has them), the next one resolves those whose burn is over.
    """

    def __init__(self, evaluator: SloEvaluator, *, interval_s: float = DEFAULT_SLO_INTERVAL_S,
                 for_s: float = 0.0, history: SloAlertHistory | None = None) -> None:
        if not (interval_s >= 0 and math.isfinite(interval_s)):
            raise SloConfigError(f"slo interval_s must be a finite number >= 0, got {interval_s}")
        self.evaluator = evaluator
        self.interval_s = interval_s
        self.tracker = AlertTracker(for_s=for_s)
        self.history = history
        self.errors = 0
        self.evaluations = 0
        self._next = -math.inf
        self._restored = history.firing() if history is not None else []
        self.tracker.restore(self._restored)

    def evaluate(self, now: float) -> list[Alert]:
        if self._restored:
            restored, self._restored = self._restored, []
            return restored  # evaluated at the next call, after the dispatcher has them
        if now < self._next:
            return []
        self._next = now + self.interval_s
        try:
            conditions = self.evaluator.conditions(now)
        except Exception:
            logger.exception("SLO evaluation failed; alerts keep their state")
            self.errors += 1
            return []
        self.evaluations += 1
        changed = [t.alert for t in self.tracker.evaluate(now, conditions)]
        if self.history is not None:
            self.history.record(changed, now)  # a failed write is counted; on-call still hears
        seen = {a.fingerprint for a in changed}
        return changed + [a for a in self.tracker.firing() if a.fingerprint not in seen]

    def firing(self) -> list[Alert]:
        return self.tracker.firing()
