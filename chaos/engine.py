"""What runs beside the fleet during an experiment: detection and remediation (the "engine").

Runbook experiments (``requires: [detection, remediation]``) prove a closed loop: fault in,
alert out, action taken, SLO back. That needs traffic (detection learns from request chains),
detection and remediation, all real. :func:`lab_engine` (the default ``--chaos-engine``) gives
them a lab of their own (:class:`warden.lab.Lab`: real Triton replicas, the router process,
open-loop traffic, the trace receiver, the engine with detection and remediation), separate from
the quiet fault lab: fault experiments measure what a fault does with nobody fixing it, so no
runbook may move traffic under them.

Why lazy: starting this lab costs replicas plus ~20 s of traffic before the P99 baselines mean
anything (300 points per replica), so it starts on the first experiment that needs it and
:meth:`LabEngine.release` stops it when its tests are done (the next user starts it again).

What the engine lab is set up to prove, and why each setting (:meth:`LabEngine.config`):

* ``synth`` costs 12 ms of simulated GPU time per item on top of 4 ms per batch, so a replica
  carries ~80 requests/s: a surge that saturates the model stays within what two shared cores
  can route, trace and store. With the default (near-free) model the *host* saturates first,
  and neither scaling out nor degrading relieves a host (measured: 360 req/s of surge left the
  model's GPU 30% busy while P99 went past 400 ms).
* One latency SLO on ``synth`` (99% under 250 ms, the runbooks' objective) with a single fast
  burn tier whose windows are production's 1 h / 5 m compressed to 60 s / 10 s, as the
  remediation cooldown is: ``SloBudgetBurn`` pages within seconds of an overload and resolves
  within seconds of its end, so one experiment's burn does not hold the page open over the next.
* ``slo_budget_s`` 30: a replica takes 12-25 s to start here, and with the default 10 s every
  scale-out would degrade first, taking the lite share the budget-burn runbook's shed sets.

:class:`ChaosEngine` is the plain record for an engine that runs already (a staging fleet's:
capabilities and its store); :class:`LabEngine` is the one this module starts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_ENGINE", "LAB_SLO", "LAB_SLO_TIERS", "ChaosEngine", "LabEngine",
           "lab_engine"]

logger = logging.getLogger("warden.chaos")
DEFAULT_ENGINE = "chaos.engine:lab_engine"
SYNTH_PER_ITEM_MS = 12.0
LAB_SLO: dict[str, Any] = {"name": "synth-latency", "model": "synth", "kind": "latency",
                           "objective": 0.99, "latency_threshold_s": 0.25}
LAB_SLO_TIERS: list[dict[str, Any]] = [{"name": "fast", "severity": "page", "factor": 14.4,
                                        "long_window_s": 60.0, "short_window_s": 10.0}]
#: Alerts about a replica's own state (it hangs, its GPU is hot): whatever the next experiment
#: faults, a replica in that state would spoil it, so :meth:`LabEngine.reset` waits them out.
STATE_ALERTS = frozenset({"ReplicaHung", "GpuThrottling"})


@dataclass
class ChaosEngine:
    """An engine that runs already (or none): what it can do and the store it writes.

    ``target``: the fleet this engine watches when it is not the session's lab (``None``: the
    session's target). ``detectable``: the alert names its detection can raise (``None``:
    unknown, nothing is skipped for it).
    """

    capabilities: frozenset[str] = frozenset()
    store: Any | None = None
    notes: list[str] = field(default_factory=list)
    target: Any | None = None
    detectable: frozenset[str] | None = None

    def ready(self) -> None:
        """Start whatever is lazy; a running engine is ready."""

    def reset(self, *, replicas: Collection[str] | None = None) -> None:
        """Undo what remediation left between experiments, before one that faults ``replicas``
        (``None``: any or unknown). Nothing to undo here."""

    def release(self) -> None:
        """Stop what :meth:`ready` started."""

    @contextlib.contextmanager
    def remediation(self, enabled: bool) -> Iterator[None]:
        """Remediation on or off for a block (only an engine this process owns can)."""
        if not enabled:
            raise RuntimeError("this engine's remediation cannot be switched off from here")
        yield


class LabEngine(ChaosEngine):
    """A lab with traffic, detection and remediation, started on first :meth:`ready`.

    Args:
        home: the lab's home (its store, logs, ``lab.json``).
        replicas / rate: fleet size and open-loop traffic (requests/s over all replicas).
        baseline_points: chains per replica before the engine counts as ready (the P99 drift
            detector's ``min_points`` is 300).
        cooldown_s: the remediation guard's cooldown; short, because consecutive experiments
            act on the same replicas minutes apart (production keeps the default 60 s).
        runbooks: extra runbook files or directories (a same-named one replaces a built-in).
    """

    def __init__(self, home: Path, *, replicas: int = 2, rate: float = 40.0,
                 baseline_points: int = 350, cooldown_s: float = 5.0,
                 runbooks: tuple[Path, ...] = (), ready_timeout_s: float = 150.0) -> None:
        from anomaly.rules import DEFAULT_RULES
        from anomaly.signals import SIGNAL_RULES
        from warden.alerting.slo import SLO_ALERTNAME

        super().__init__(capabilities=frozenset({"detection", "remediation"}),
                         detectable=frozenset({r.alertname for r in (*DEFAULT_RULES,
                                                                     *SIGNAL_RULES)}
                                              | {SLO_ALERTNAME}))
        self.home = Path(home)
        self.replicas, self.rate = replicas, rate
        self.baseline_points = baseline_points
        self.cooldown_s = cooldown_s
        self.runbook_paths = tuple(runbooks)
        self.ready_timeout_s = ready_timeout_s
        self.lab: Any | None = None
        self.started_s: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def config(self) -> Any:
        from warden.config import WardenConfig

        return WardenConfig.model_validate({
            "home": str(self.home),
            # Round robin: a latency-aware policy would route around a slow replica by itself,
            # and the experiment must prove that Warden did.
            "lab": {"replicas": self.replicas, "router_port": 0, "router_policy": "round_robin",
                    "traffic": {"kind": "constant", "rate": self.rate},
                    "traffic_models": {"synth": 1.0}, "dashboard": False},
            "fleet": {"models": ["synth"], "synth_cost": {"per_item_ms": SYNTH_PER_ITEM_MS}},
            "alerting": {"slos": [LAB_SLO], "slo_interval_s": 1.0, "slo_tiers": LAB_SLO_TIERS},
            "remediation": {"enabled": True, "runbooks": [str(p) for p in self.runbook_paths],
                            "guards": {"cooldown_s": self.cooldown_s},
                            "vars": {"slo_budget_s": 30.0}},
        })

    def ready(self) -> None:
        if self.lab is not None:
            return
        from chaos.probes import warm_up
        from chaos.target import LocalTarget
        from warden.lab import Lab
        from warden.store import Store

        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.config()
        lab = Lab(config, with_traffic=True)
        lab.start()
        self.lab = lab
        try:
            self.store = Store(config.db_path, readonly=True)
            self.target = LocalTarget(lab.fleet, router_url=lab.router_url,
                                      db_path=str(config.db_path))
            warm_up(self.target)
            self._wait_baselines(t0 + self.ready_timeout_s)
        except BaseException:
            self.release()
            raise
        self.started_s = time.monotonic() - t0
        self.notes.append(f"engine lab ready in {self.started_s:.0f} s ({self.replicas} "
                          f"replicas, {self.rate:g} req/s, detection + remediation)")
        logger.info(self.notes[-1])

    def _wait_baselines(self, deadline: float) -> None:
        """Until every replica has ``baseline_points`` chains: before that, P99 is noise."""
        assert self.store is not None and self.lab is not None
        names = [r.name for r in self.lab.fleet.replicas]
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            df = self.store.query("SELECT replica, COUNT(*) AS n FROM chains WHERE error = 0 "
                                  "GROUP BY replica")
            counts = {str(r.replica): int(r.n) for r in df.itertuples()}
            if all(counts.get(n, 0) >= self.baseline_points for n in names):
                return
            time.sleep(0.5)
        raise RuntimeError(f"engine lab: detection baselines not learnt in time: chains per "
                           f"replica {counts}, need {self.baseline_points} each")

    def release(self) -> None:
        lab, self.lab = self.lab, None
        store, self.store = self.store, None
        self.target = None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()
        if lab is not None:
            lab.stop()

    # -- between experiments ---------------------------------------------------------------------

    def reset(self, *, alerts_timeout_s: float = 45.0,
              replicas: Collection[str] | None = None) -> None:
        """Scale back to the lab's size, give every replica its weight back, undo degradation,
        then wait (bounded) until no alert fires that would spoil the next experiment: one on
        ``replicas`` (``None``: on any; an alert still firing would not fire again, so the next
        experiment's runbook would never run), one about a replica's state on any replica (a
        hot GPU, a replica not answering) and one about a whole model (saturation, SLO burn).

        45 s: a drift alert on the peer that carried a hung replica's load took up to ~30 s to
        resolve here, and the next experiment faults that peer."""
        if self.lab is None or self.lab.admin is None:
            return
        if len(self.lab.fleet.replicas) > self.replicas:  # a scale-out's replicas go first
            self.notes.append(f"reset: scaled {len(self.lab.fleet.replicas)} replicas back to "
                              f"{self.replicas}")
            self.lab.fleet.scale(self.replicas)  # the lab syncs the router on the change
        if self.target is not None:
            self.target.refresh()
        self._repair()
        self.lab.admin.set_weights({r.name: 1.0 for r in self.lab.fleet.replicas})
        for model in self.lab.config.fleet.models:
            self.lab.admin.set_variant_split(model, 0.0)
        deadline = time.monotonic() + alerts_timeout_s
        while self.firing(replicas) and time.monotonic() < deadline:
            time.sleep(0.5)
        if alerts_timeout_s > 0 and self.firing(replicas):
            self.notes.append(f"reset: alerts still firing after {alerts_timeout_s:g} s: "
                              f"{self.firing(replicas)}")

    def _repair(self, grace_s: float = 10.0) -> None:
        """Restart a replica that does not serve ``synth`` within ``grace_s``: one experiment's
        broken replica must not fail the next. Noted, because it is a finding (e.g. a replica
        SIGSTOPped under traffic may not serve again after SIGCONT)."""
        from chaos.probes import model_ready

        assert self.lab is not None and self.target is not None
        deadline = time.monotonic() + grace_s
        for r in list(self.lab.fleet.replicas):
            while not (ok := model_ready(self.target, replica=r.name, model="synth")) \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            if not ok:
                self.notes.append(f"reset: {r.name} did not serve synth; restarted it")
                logger.warning(self.notes[-1])
                self.target.restart(r.name)

    def firing(self, replicas: Collection[str] | None = None) -> list[str]:
        """What the engine's detection, signal rules and SLOs have firing now that would spoil
        an experiment on ``replicas`` (see :meth:`reset`), as ``alertname{replica or model}``."""
        telemetry = self.lab.telemetry if self.lab else None
        if telemetry is None:
            return []

        def spoils(labels: dict[str, str]) -> bool:
            replica = labels.get("replica")
            return (replicas is None or replica is None or replica in replicas
                    or labels.get("alertname") in STATE_ALERTS)

        for _ in range(3):  # the engine thread may change its rule states while we read
            try:
                return sorted({f"{a.name}{{{lb.get('replica') or lb.get('model', '')}}}"
                               for a in telemetry.firing(slo=True)
                               if spoils(lb := dict(a.labels))})
            except RuntimeError:
                time.sleep(0.05)
        return []

    @contextlib.contextmanager
    def remediation(self, enabled: bool) -> Iterator[None]:
        """Remediation off for a block: detection still alerts, no runbook runs. The same lab,
        traffic and faults with nobody fixing them: the baseline "remediation on" improves on."""
        self.ready()
        assert self.lab is not None
        svc = self.lab.telemetry.remediation if self.lab.telemetry else None
        if svc is None:
            raise RuntimeError("engine lab runs without remediation")
        before = svc.config.enabled
        svc.config.enabled = enabled
        try:
            yield
        finally:
            svc.config.enabled = before

    @contextlib.contextmanager
    def runbooks(self, paths: list[Path]) -> Iterator[None]:
        """Run with these runbook files added (a same-named one replaces the built-in) for a
        block, on the running lab: how a broken runbook is exercised without a lab of its own."""
        from remediation.actions import builtin_registry
        from remediation.runbook import load_runbooks

        self.ready()
        assert self.lab is not None and self.lab.telemetry is not None
        svc = self.lab.telemetry.remediation
        if svc is None:
            raise RuntimeError("engine lab runs without remediation")
        loaded = load_runbooks(builtin_registry(), [*self.runbook_paths, *paths])
        old = svc.runbooks
        svc.runbooks = svc.executor.runbooks = loaded
        try:
            yield
        finally:
            svc.runbooks = svc.executor.runbooks = old


@contextlib.contextmanager
def lab_engine(lab: Any, db_path: Path) -> Iterator[LabEngine]:
    """The default ``--chaos-engine``: a lazily started :class:`LabEngine` beside ``lab``.

    ``lab`` is the session's quiet fault lab; the engine's lab lives next to its home.
    """
    home = Path(lab.home if lab is not None else Path(db_path).parent).parent / "chaos-engine-lab"
    engine = LabEngine(home)
    try:
        yield engine
    finally:
        engine.release()
