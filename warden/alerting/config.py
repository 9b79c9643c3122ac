"""The ``alerting:`` section of ``warden.yaml``, validated at load with errors naming the key.

Defaults follow Alertmanager (group_wait 30 s, group_interval 5 m, repeat_interval 4 h) and make
an empty section valid: no receivers means nothing is sent, but silences, the outbox and the
inbound receiver still work. Secrets are ``SecretStr``: they print as ``**********``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from warden.alerting import AlertingError
from warden.alerting.grouping import (
    DEFAULT_GROUP_INTERVAL_S,
    DEFAULT_GROUP_WAIT_S,
    DEFAULT_REPEAT_INTERVAL_S,
)
from warden.alerting.matchers import MatcherError, parse_matcher
from warden.alerting.receiver import DEFAULT_MAX_BODY_BYTES
from warden.alerting.slo import DEFAULT_SLO_INTERVAL_S, DEFAULT_TIERS, BurnRateTier, SloSpec

__all__ = [
    "AlertingConfig",
    "AlertingConfigError",
    "InboundConfig",
    "InhibitRuleConfig",
    "OutboxConfig",
    "ReceiverConfig",
    "RouteConfig",
    "SloTierConfig",
    "load_alerting_config",
]


class AlertingConfigError(AlertingError, ValueError):
    """A bad ``alerting:`` section; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_matchers(values: list[str]) -> list[str]:
    for v in values:
        try:
            parse_matcher(v)
        except MatcherError as exc:
            raise ValueError(str(exc)) from exc
    return values


class ReceiverConfig(_Strict):
    """A notification target: a webhook (v4 JSON) or a real Alertmanager to push to."""

    name: str = Field(min_length=1)
    kind: Literal["webhook", "alertmanager"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    hmac_secret: SecretStr | None = None
    bearer_token: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    max_alerts: int = Field(default=0, ge=0)


class RouteConfig(_Strict):
    receiver: str = Field(min_length=1)
    group_by: list[str] = Field(default_factory=lambda: ["alertname"])
    matchers: list[str] = Field(default_factory=list)
    group_wait_s: float = Field(default=DEFAULT_GROUP_WAIT_S, ge=0)
    group_interval_s: float = Field(default=DEFAULT_GROUP_INTERVAL_S, gt=0)
    repeat_interval_s: float = Field(default=DEFAULT_REPEAT_INTERVAL_S, gt=0)

    @model_validator(mode="after")
    def _m(self) -> RouteConfig:
        _check_matchers(self.matchers)
        return self


class InhibitRuleConfig(_Strict):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _m(self) -> InhibitRuleConfig:
        _check_matchers(self.source_matchers + self.target_matchers)
        return self


class OutboxConfig(_Strict):
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    dead_after_s: float = Field(default=3600.0, gt=0)


class InboundConfig(_Strict):
    """The endpoint Alertmanager posts to; off unless a token or secret is set."""

    host: str = "127.0.0.1"
    port: int = Field(default=9094, ge=0, le=65535)
    bearer_token: SecretStr | None = None
    hmac_secret: SecretStr | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)


class SloTierConfig(_Strict):
    """One burn-rate tier: fires when both windows burn at ``factor`` or faster.

    The default tiers are the SRE Workbook's (1 h & 5 m at 14.4x, ...); a lab that compresses
    time (as its cooldowns are) names shorter windows here.
    """

    name: str = Field(min_length=1)
    severity: str = Field(min_length=1)
    factor: float = Field(gt=0, allow_inf_nan=False)
    long_window_s: float = Field(gt=0, allow_inf_nan=False)
    short_window_s: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _windows(self) -> SloTierConfig:
        if self.short_window_s > self.long_window_s:
            raise ValueError("short_window_s must be <= long_window_s")
        return self

    def tier(self) -> BurnRateTier:
        return BurnRateTier(self.name, self.severity, self.factor, self.long_window_s,
                            self.short_window_s)


class AlertingConfig(_Strict):
    external_url: str = "http://127.0.0.1:8501"
    dashboard_url: str = ""
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    inhibit_rules: list[InhibitRuleConfig] | None = None  # None: Warden's default rules
    rate_limit_per_minute: int = Field(default=30, ge=1)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    inbound: InboundConfig = Field(default_factory=InboundConfig)
    #: SLOs evaluated from the store's request chains (``warden slo`` reads the same list).
    slos: list[SloSpec] = Field(default_factory=list)
    slo_interval_s: float = Field(default=DEFAULT_SLO_INTERVAL_S, ge=0, allow_inf_nan=False)
    #: Burn-rate tiers for every SLO; ``None``: the default multi-window tiers.
    slo_tiers: list[SloTierConfig] | None = Field(default=None, min_length=1)

    def burn_rate_tiers(self) -> tuple[BurnRateTier, ...]:
        return DEFAULT_TIERS if self.slo_tiers is None else tuple(
            t.tier() for t in self.slo_tiers)

    @model_validator(mode="after")
    def _routes_name_receivers(self) -> AlertingConfig:
        slo_names = [s.name for s in self.slos]
        if len(set(slo_names)) != len(slo_names):
            raise ValueError("slos: names must be unique")
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receivers: names must be unique")
        for i, route in enumerate(self.routes):
            if route.receiver not in names:
                raise ValueError(f"routes[{i}].receiver: no receiver named {route.receiver!r}")
        return self


def load_alerting_config(section: Any) -> AlertingConfig:
    """Validate the ``alerting:`` mapping (``None`` gives the defaults)."""
    if section is None:
        return AlertingConfig()
    if not isinstance(section, dict):
        raise AlertingConfigError("alerting: must be a mapping")
    try:
        return AlertingConfig.model_validate(section)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise AlertingConfigError(f"alerting.{loc}: {err['msg']}" if loc
                                  else f"alerting: {err['msg']}") from exc
