"""Label matchers as Alertmanager writes them: ``name=value``, ``!=``, ``=~``, ``!~``.

Shared by silences and inhibition rules. Regular expressions are anchored, as in Alertmanager
(``=~"Latency.*"`` must match the whole value). A missing label matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from warden.alerting import AlertingError

__all__ = ["Matcher", "MatcherError", "matches_all", "parse_matcher"]

_OPS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MatcherError(AlertingError, ValueError):
    """A matcher that cannot be parsed or compiled."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise MatcherError(f"bad label name {self.name!r}")
        if self.op not in _OPS:
            raise MatcherError(f"bad matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"^(?:{self.value})$"))
            except re.error as exc:
                raise MatcherError(f"bad regex {self.value!r}: {exc}") from exc

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        assert self._regex is not None
        hit = self._regex.match(v) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """Parse ``name=value`` (also ``!=``, ``=~``, ``!~``); quotes around the value are dropped."""
    for op in _OPS:
        idx = text.find(op)
        if idx > 0:
            # "=" must not be the start of "=~"; "!=" is checked before "=".
            name, value = text[:idx].strip(), text[idx + len(op):].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return Matcher(name, op, value)
    raise MatcherError(f"not a matcher: {text!r} (want name=value, !=, =~ or !~)")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
