"""Inhibition: a firing source alert mutes target alerts that share the ``equal`` labels.

Why: when a replica is down, its latency alerts are consequences, not news; paging for them
buries the cause. Alertmanager's semantics: a target is muted while some *firing* source alert
matches the source matchers and has the same values for every ``equal`` label; an alert never
inhibits itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from warden.alerting.matchers import Matcher, matches_all, parse_matcher
from warden.records import Alert, AlertStatus

__all__ = ["DEFAULT_RULES", "InhibitRule", "Inhibitor", "REPLICA_DOWN_MUTES_LATENCY",
           "SLO_PAGE_MUTES_TICKET"]


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def mutes(self, target: Alert, sources: Iterable[Alert]) -> Alert | None:
        """The source alert that mutes ``target`` under this rule, or ``None``."""
        tl = dict(target.labels)
        if not matches_all(self.target, tl):
            return None
        for src in sources:
            if src.status is not AlertStatus.FIRING or src.fingerprint == target.fingerprint:
                continue
            sl = dict(src.labels)
            if matches_all(self.source, sl) and all(sl.get(k, "") == tl.get(k, "")
                                                    for k in self.equal):
                return src
        return None


REPLICA_DOWN_MUTES_LATENCY = InhibitRule(
    source=(parse_matcher("alertname=ReplicaDown"),),
    target=(parse_matcher("alertname=~.*Latency.*"),),
    equal=("replica",),
)
"""The default rule: a replica that is down mutes the latency alerts on that replica."""


SLO_PAGE_MUTES_TICKET = InhibitRule(
    source=(parse_matcher("alertname=SloBudgetBurn"), parse_matcher("severity=page")),
    target=(parse_matcher("alertname=SloBudgetBurn"), parse_matcher("severity=ticket")),
    equal=("slo",),
)
"""A fast burn that pages makes the slow-burn ticket for the same SLO redundant."""

DEFAULT_RULES: tuple[InhibitRule, ...] = (REPLICA_DOWN_MUTES_LATENCY, SLO_PAGE_MUTES_TICKET)


class Inhibitor:
    """Applies rules against the alerts currently known (``sources()``, e.g. the grouper's)."""

    def __init__(self, rules: Iterable[InhibitRule],
                 sources: Callable[[], Iterable[Alert]]) -> None:
        self.rules = tuple(rules)
        self._sources = sources

    def muted_by(self, alert: Alert) -> Alert | None:
        if alert.status is not AlertStatus.FIRING:
            return None
        sources = list(self._sources())
        for rule in self.rules:
            src = rule.mutes(alert, sources)
            if src is not None:
                return src
        return None
