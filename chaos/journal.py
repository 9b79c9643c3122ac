"""The journal: one JSON file per experiment run, the evidence behind its verdict.

It holds the timeline (fault injected at t0, first alert, first action, SLO back, faults
reverted), each steady-state check with every probe's value and why it passed or not, the SLI
windows, what the store showed (alerts, actions, and notes on what was missing), each
expectation's result, and the summary numbers (time to detect, time to recover, SLO-violation
seconds). :meth:`Journal.result` gives the shared :class:`warden.records.ExperimentResult`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chaos.sli import SliWindow
from warden.records import ExperimentResult

__all__ = ["Event", "ExpectationResult", "HypothesisResult", "Journal", "ProbeResult", "Verdict"]

Verdict = Literal["passed", "failed", "aborted", "interrupted", "skipped", "running"]


class Event(BaseModel):
    t: float
    rel_s: float
    kind: str
    detail: str = ""


class ProbeResult(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")

    name: str
    value: Any = None
    ok: bool
    why: str = ""


class HypothesisResult(BaseModel):
    phase: Literal["before", "during", "after"]
    ok: bool
    probes: list[ProbeResult] = Field(default_factory=list)

    def failures(self) -> str:
        return "; ".join(f"{p.name}: {p.why}" for p in self.probes if not p.ok)


class ExpectationResult(BaseModel):
    name: str
    ok: bool
    detail: str = ""


class Journal(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")

    title: str
    source: str = ""
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None
    verdict: Verdict = "running"
    reasons: list[str] = Field(default_factory=list)
    requires: list[str] = Field(default_factory=list)
    target: dict[str, Any] = Field(default_factory=dict)
    timeline: list[Event] = Field(default_factory=list)
    hypotheses: list[HypothesisResult] = Field(default_factory=list)
    faults: list[dict[str, Any]] = Field(default_factory=list)
    sli: list[SliWindow] = Field(default_factory=list)
    sli_threshold_ms: float | None = None
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(default_factory=list)
    expectations: list[ExpectationResult] = Field(default_factory=list)
    fault_at: float | None = None
    time_to_detect_s: float | None = None
    time_to_act_s: float | None = None
    time_to_recover_s: float | None = None
    slo_violation_s: float = 0.0
    notes: list[str] = Field(default_factory=list)
    path: str = ""

    def event(self, kind: str, detail: str = "", t: float | None = None) -> Event:
        t = time.time() if t is None else t
        ev = Event(t=t, rel_s=round(t - self.started_at, 3), kind=kind, detail=detail)
        self.timeline.append(ev)
        return ev

    def hypothesis(self, phase: str) -> HypothesisResult | None:
        return next((h for h in self.hypotheses if h.phase == phase), None)

    def summary(self) -> str:
        """One line: verdict and the first reasons, for test failures and the terminal."""
        why = "; ".join(self.reasons) or "all expectations met"
        return f"{self.title}: {self.verdict.upper()}: {why} (journal {self.path or '-'})"

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", Path(self.source).stem.lower() if self.source
                      else self.title.lower()).strip("-") or "experiment"
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.started_at))
        path = directory / f"{slug}-{stamp}-{int(self.started_at * 1000) % 1000:03d}.json"
        self.path = str(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Journal:
        return cls.model_validate_json(Path(path).read_text())

    def result(self) -> ExperimentResult:
        return ExperimentResult(ts=self.started_at, title=self.title, verdict=self.verdict,
                                time_to_detect_s=self.time_to_detect_s,
                                time_to_recover_s=self.time_to_recover_s,
                                slo_violation_s=self.slo_violation_s, journal_path=self.path)
