"""Run one experiment: hypothesis, inject, watch, hypothesis, revert, hypothesis, journal.

Order and guarantees:

1. Faults left by a crashed earlier run (the ledger) are reverted first.
2. Everything is validated before the fleet is touched: providers resolve, arguments bind to
   their signatures, faults construct (bad values raise ``ExperimentError``).
3. The steady state must hold before; if not, nothing is injected (verdict ``aborted``).
4. Method: each fault is written to the ledger (fsynced) *before* it is injected.
5. Watch: poll the store for alerts and actions, sample the SLI, print progress.
6. Steady state "during" (faults still in), then **always** (``finally``, also on Ctrl-C and
   SIGTERM, which this module turns into ``KeyboardInterrupt``) revert every injected fault,
   newest first, and run the rollbacks, even when the run failed (Chaos Toolkit runs rollbacks
   only on request; its users keep asking for this default). A second Ctrl-C during cleanup is
   ignored so cleanup finishes.
7. Wait for the SLI to recover (bounded), check the steady state again, compute time to detect,
   time to recover and SLO-violation seconds, check the expectations, write the journal.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chaos.activity import build_fault, call_provider, resolve, validate_call
from chaos.errors import ActivityFailed, ExperimentError, FaultUnavailable
from chaos.expectations import evaluate
from chaos.experiment import Activity, Experiment
from chaos.faults.base import Fault
from chaos.journal import HypothesisResult, Journal, ProbeResult
from chaos.ledger import Ledger, revert_leftovers
from chaos.observed import StoreObserver
from chaos.sli import SliSampler, StoreSli
from chaos.target import Target
from chaos.tolerance import check_tolerance

__all__ = ["Runner", "stderr_progress"]

RECOVER_TIMEOUT_S = 15.0


def stderr_progress(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def _interrupts_as_keyboard() -> Iterator[dict[str, bool]]:
    """SIGTERM (and SIGINT) raise KeyboardInterrupt, once; later ones are noted and ignored."""
    state = {"cleaning": False, "interrupted": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: Any) -> None:
        state["interrupted"] = True
        if state["cleaning"]:
            stderr_progress(f"{signal.Signals(signum).name} during cleanup: reverting first")
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Runner:
    """Runs experiments against one target. ``capabilities`` names what runs with the fleet
    (``detection``, ``remediation``); an experiment requiring more is skipped with the reason,
    and so is one expecting an alert outside ``detectable`` (the alert names the engine's
    detection can raise; ``None``: not known, nothing skipped for it)."""

    def __init__(
        self,
        target: Target,
        *,
        journal_dir: Path,
        ledger_path: Path | None = None,
        store: Any | None = None,
        capabilities: set[str] | frozenset[str] = frozenset(),
        detectable: set[str] | frozenset[str] | None = None,
        progress: Callable[[str], None] = stderr_progress,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.journal_dir = Path(journal_dir)
        self.ledger = Ledger(ledger_path or self.journal_dir / "faults.ledger")
        self.store = store
        self.capabilities = set(capabilities)
        self.detectable = None if detectable is None else set(detectable)
        self.progress = progress
        self.clock, self.sleep = clock, sleep

    # -- validation ------------------------------------------------------------------------------

    def validate(self, exp: Experiment) -> dict[str, list[tuple[Activity, Fault | None]]]:
        """Resolve and bind every activity; construct the faults. Touches nothing."""
        src = exp.source or exp.title
        for i, probe in enumerate(exp.steady_state_hypothesis.probes):
            where = f"{src}: steady_state_hypothesis.probes[{i}] ({probe.name})"
            validate_call(resolve(probe.provider, where), probe.arguments, where)
        planned: dict[str, list[tuple[Activity, Fault | None]]] = {"method": [], "rollbacks": []}
        for section in ("method", "rollbacks"):
            for i, act in enumerate(getattr(exp, section)):
                where = f"{src}: {section}[{i}] ({act.name})"
                if act.type == "fault":
                    planned[section].append((act, build_fault(act.provider, act.arguments,
                                                              self.target, where)))
                else:
                    validate_call(resolve(act.provider, where), act.arguments, where)
                    planned[section].append((act, None))
        if exp.sli and exp.sli.via != "router" and exp.sli.source == "probe":
            self.target.replica(exp.sli.via)
        if exp.sli and exp.sli.source == "store" and self.store is None:
            raise ExperimentError(f"{src}: sli.source is 'store' but the runner has no store "
                                  "(pass --db, or run with the engine's store)")
        return planned

    def skip_reasons(self, exp: Experiment) -> list[str]:
        """Why this target cannot run ``exp`` at all (empty: it can); checked before anything
        starts, so a caller can also skip without starting an engine."""
        out = []
        missing = sorted(set(exp.requires) - self.capabilities)
        if missing:
            out.append(f"requires {', '.join(missing)}, which this target does not run "
                       f"(capabilities: {sorted(self.capabilities) or 'none'})")
        if self.detectable is not None:
            undetectable = sorted({a.alertname for a in exp.expectations.alerts}
                                  - self.detectable)
            if undetectable:
                out.append(f"expects alert {', '.join(undetectable)}, which this engine's "
                           f"detection has no rule to raise (it raises: "
                           f"{', '.join(sorted(self.detectable)) or 'nothing'})")
        return out

    # -- one run -----------------------------------------------------------------------------------

    def run(self, exp: Experiment) -> Journal:
        j = Journal(title=exp.title, source=exp.source, requires=list(exp.requires),
                    target=self.target.describe(), started_at=self.clock(),
                    sli_threshold_ms=exp.sli.threshold_ms if exp.sli else None)
        say = lambda m: self.progress(f"{exp.title}: {m}")  # noqa: E731
        skip = self.skip_reasons(exp)
        if skip:
            j.verdict = "skipped"
            j.reasons += skip
            return self._finish(j, say)
        leftovers = revert_leftovers(self.ledger, self.target)
        for label in leftovers.reverted:
            j.notes.append(f"reverted a leftover fault from a crashed run: {label}")
        for label in leftovers.failed:
            j.notes.append(f"could NOT revert a leftover fault: {label}")
        planned = self.validate(exp)
        method, rollbacks = planned["method"], planned["rollbacks"]
        for act, fault in method:
            reason = fault.available() if fault is not None else None
            if reason:
                j.verdict = "skipped"
                j.reasons.append(f"fault {act.name} unavailable here: {reason}")
                return self._finish(j, say)

        injected: list[tuple[str, Activity, Fault]] = []
        sampler: SliSampler | StoreSli | None = None
        if exp.sli and exp.sli.source == "store":
            sampler = StoreSli(exp.sli, self.store, clock=self.clock)
        elif exp.sli:
            sampler = SliSampler(exp.sli, self.target, clock=self.clock)
        observer = StoreObserver(self.store) if self.store is not None else None
        with _interrupts_as_keyboard() as sig:
            try:
                if sampler:
                    sampler.start()
                say("checking the steady state before")
                before = self._hypothesis(exp, "before", j)
                if not before.ok:
                    j.verdict = "aborted"
                    j.reasons.append(f"steady state did not hold before: {before.failures()}")
                    return self._finish(j, say, sampler)
                if sampler:
                    self._wait_windows(sampler, exp.sli.recover_windows if exp.sli else 1)
                for act, fault in method:
                    self._pause(act.pauses.before)
                    if fault is not None:
                        fid = self.ledger.injecting(act.provider, act.arguments, self.target,
                                                    exp.title)
                        injected.append((fid, act, fault))
                        t = self.clock()
                        fault.inject()
                        self.ledger.state(fid, fault.state())
                        j.fault_at = j.fault_at or t
                        j.event("fault_injected", fault.describe(), t)
                        j.faults.append({"name": act.name, "fault": fault.describe(),
                                         "injected_at": t, "reverted_at": None})
                        say(f"injected {fault.describe()}")
                    else:
                        value = call_provider(resolve(act.provider), act.arguments, self.target)
                        j.event(f"{act.type}_ran", f"{act.name} -> {value!r}"[:300])
                    self._pause(act.pauses.after)
                self._watch(exp, j, sampler, observer, say)
                say("checking the steady state during the fault")
                self._hypothesis(exp, "during", j)
            except KeyboardInterrupt as exc:
                j.verdict = "interrupted"
                j.reasons.append(f"interrupted ({exc or 'SIGINT'}): faults reverted on exit")
                say("interrupted: reverting")
            except (ActivityFailed, FaultUnavailable) as exc:
                j.verdict = "aborted" if not injected else "failed"
                j.reasons.append(f"activity failed: {exc}")
                say(f"activity failed: {exc}")
            except Exception as exc:  # a bug in a fault or probe: still revert, still journal
                j.verdict = "aborted" if not injected else "failed"
                j.reasons.append(f"runner error: {type(exc).__name__}: {exc}")
                say(f"runner error: {type(exc).__name__}: {exc}")
            finally:
                sig["cleaning"] = True
                self._revert(injected, rollbacks, j, say)
            if sampler and j.fault_at:
                self._wait_recovery(sampler, j.fault_at)
            say("checking the steady state after the rollbacks")
            try:
                self._hypothesis(exp, "after", j)
            except ActivityFailed as exc:
                j.reasons.append(f"steady-state probe failed after rollback: {exc}")
            if observer is not None and j.fault_at:
                self._observe(j, observer)
            return self._finish(j, say, sampler, exp)

    # -- steps -----------------------------------------------------------------------------------

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)

    def _hypothesis(self, exp: Experiment, phase: str, j: Journal) -> HypothesisResult:
        """Check the steady state, retrying a failed check ``retries`` times: a shared box
        stalls now and then, and one stalled probe must not decide the run. During the fault
        only when it is expected to hold (a runbook restored it): one that is expected to
        break must break at the first look, not at whichever retry happens to break."""
        hyp = exp.steady_state_hypothesis
        retry = phase != "during" or exp.expectations.hypothesis_during == "holds"
        tries = 1 + hyp.retries if retry else 1
        for attempt in range(tries):
            if attempt:
                j.notes.append(f"steady state {phase}: attempt {attempt} failed "
                               f"({j.hypotheses[-1].failures()}); retrying")
                j.hypotheses.pop()
                self.sleep(hyp.retry_delay_s)
            h = self._check_once(exp, phase, j)
            if h.ok:
                break
        return h

    def _check_once(self, exp: Experiment, phase: str, j: Journal) -> HypothesisResult:
        results = []
        for probe in exp.steady_state_hypothesis.probes:
            try:
                value = call_provider(resolve(probe.provider), probe.arguments, self.target)
                ok, why = check_tolerance(probe.tolerance, value)
            except ActivityFailed as exc:
                value, ok, why = None, False, f"probe raised: {exc}"
            results.append(ProbeResult(name=probe.name, value=value if _jsonable(value)
                                       else repr(value), ok=ok, why=why))
        h = HypothesisResult(phase=phase, ok=all(r.ok for r in results),  # type: ignore[arg-type]
                             probes=results)
        j.hypotheses.append(h)
        j.event(f"hypothesis_{phase}", "holds" if h.ok else f"broken: {h.failures()}")
        return h

    def _watch(self, exp: Experiment, j: Journal, sampler: SliSampler | StoreSli | None,
               observer: StoreObserver | None, say: Callable[[str], None]) -> None:
        w = exp.watch
        start = self.clock()
        deadline = start + w.duration_s
        last_report = 0.0
        needs_obs = bool(exp.expectations.alerts or exp.expectations.actions)
        while self.clock() < deadline:
            self.sleep(w.poll_s)
            if observer is not None and j.fault_at:
                self._observe(j, observer)
            now = self.clock()
            if now - last_report >= 2.0:
                last_report = now
                sli = ""
                if sampler and sampler.snapshot():
                    last = sampler.snapshot()[-1]
                    sli = f", SLI P99 {last.p99_ms:.0f} ms err {last.error_ratio:.0%}"
                say(f"watching {now - start:4.1f}/{w.duration_s:g} s: {len(j.alerts)} alerts, "
                    f"{len(j.actions)} actions{sli}")
            if w.stop_when_met and needs_obs and j.fault_at:
                met = evaluate(exp, j, final=False)
                recovered = sampler.recovered(j.fault_at) if sampler else True
                if all(e.ok for e in met) and recovered:
                    say("every expectation seen: ending the watch early")
                    break

    def _observe(self, j: Journal, observer: StoreObserver) -> None:
        since = j.fault_at or j.started_at
        alerts = observer.alerts_since(since)
        actions = observer.actions_since(since)
        if alerts and not j.alerts:
            j.event("first_alert", alerts[0].alertname, alerts[0].ts)
        if actions and not j.actions:
            j.event("first_action", f"{actions[0].runbook}:{actions[0].step}", actions[0].ts)
        j.alerts = [a.__dict__ for a in alerts]
        j.actions = [a.__dict__ for a in actions]
        for note in sorted(observer.notes):
            if note not in j.notes:
                j.notes.append(note)

    def _revert(self, injected: list[tuple[str, Activity, Fault]],
                rollbacks: list[tuple[Activity, Fault | None]], j: Journal,
                say: Callable[[str], None]) -> None:
        for fid, act, fault in reversed(injected):
            try:
                fault.revert()
                self.ledger.reverted(fid)
                t = self.clock()
                j.event("fault_reverted", fault.describe(), t)
                for f in j.faults:
                    if f["name"] == act.name and f["reverted_at"] is None:
                        f["reverted_at"] = t
                say(f"reverted {fault.describe()}")
            except Exception as exc:  # keep reverting the others; the ledger keeps this one
                self.ledger.reverted(fid, error=str(exc))
                j.reasons.append(f"could not revert {fault.describe()}: {exc}")
                say(f"REVERT FAILED for {fault.describe()}: {exc}")
        for act, fault in rollbacks:
            try:
                if fault is not None:
                    fault.revert()
                else:
                    call_provider(resolve(act.provider), act.arguments, self.target)
                j.event("rollback_ran", act.name)
            except Exception as exc:
                j.reasons.append(f"rollback {act.name} failed: {exc}")

    def _wait_windows(self, sampler: SliSampler | StoreSli, n: int) -> None:
        if isinstance(sampler, StoreSli):
            return
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        while len(sampler.snapshot()) < n and time.monotonic() < deadline:
            time.sleep(0.1)

    def _wait_recovery(self, sampler: SliSampler | StoreSli, t0: float) -> None:
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        while not sampler.recovered(t0) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _finish(self, j: Journal, say: Callable[[str], None],
                sampler: SliSampler | StoreSli | None = None,
                exp: Experiment | None = None) -> Journal:
        if sampler is not None:
            j.sli = sampler.stop()
        if exp is not None:
            j.expectations = evaluate(exp, j, final=True)
            if j.verdict == "running":
                failed = [e for e in j.expectations if not e.ok]
                j.verdict = "failed" if failed or j.reasons else "passed"
                j.reasons += [f"{e.name}: {e.detail}" for e in failed]
        j.ended_at = self.clock()
        j.timeline.sort(key=lambda e: e.t)
        path = j.save(self.journal_dir)
        say(f"{j.verdict.upper()} (journal {path})"
            + (f": {'; '.join(j.reasons)}" if j.reasons else ""))
        return j


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, list, dict))
