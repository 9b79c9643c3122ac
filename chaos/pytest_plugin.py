"""The chaos suite as pytest tests: ``@pytest.mark.chaos`` and fixtures for the lab and runs.

Register with ``pytest_plugins = ["chaos.pytest_plugin"]`` in the root ``conftest.py`` (or
``-p chaos.pytest_plugin``). Fixtures:

* ``chaos_lab`` (session): the local lab (real Triton replicas and the router), started once,
  warmed up, always stopped; ``None`` when ``--chaos-target`` points elsewhere.
* ``chaos_target`` (session): the :class:`~chaos.target.Target`: the local lab, or the fleet in
  the ``--chaos-target`` file (``lab.json`` or a written target), so the same suite runs
  against staging.
* ``chaos_engine`` (session): what runs beside the fleet, as :class:`ChaosEngine`: the
  capabilities (``detection``, ``remediation``), the store the expectations read and, for an
  engine with a lab of its own, the target runbook experiments run against. On the local lab
  the default is :func:`chaos.engine.lab_engine`: a second real lab with traffic, detection
  and remediation, started lazily by the first experiment that requires them.
  ``--chaos-engine module:func`` names another (``func(lab, db_path)`` is a context manager
  yielding a ``ChaosEngine``; ``none`` for no engine); for a staging fleet whose engine runs
  already, pass ``--chaos-capabilities`` and ``--chaos-db``; or override the fixture.
* ``run_experiment``: ``run_experiment(path_or_experiment) -> Journal``. Skips with the reason
  (and still writes a "skipped" journal) when the experiment requires what the engine lacks or
  a fault cannot run here; fails the test with the journal's path, the reason and its timeline
  when the verdict is not ``passed``.

Journals go to ``--chaos-journal-dir`` (default: a session temp dir), one file per run; the
path is attached to the test report (``user_properties``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.engine import DEFAULT_ENGINE, ChaosEngine
from chaos.experiment import Experiment, load_experiment
from chaos.journal import Journal
from chaos.probes import warm_up
from chaos.report import format_timeline
from chaos.runner import Runner
from chaos.target import LocalTarget, Target, load_target

__all__ = ["ChaosEngine", "chaos_containers", "chaos_engine", "chaos_journal_dir", "chaos_lab",
           "chaos_target", "pytest_addoption", "pytest_configure", "run_experiment"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "Warden chaos experiments")
    group.addoption("--chaos-target", default=None,
                    help="the fleet instead of the local lab: a target file (lab.json or "
                         "written target) or inline 'router=URL,r0=URL|CONTROL_URL,...'")
    group.addoption("--chaos-journal-dir", default=None, help="where journals are written")
    group.addoption("--chaos-capabilities", default="",
                    help="what runs beside the target fleet: detection,remediation")
    group.addoption("--chaos-db", default=None, help="the Warden store of the target's engine")
    group.addoption("--chaos-engine", default=None,
                    help="module:func(lab, db_path) -> context manager yielding a ChaosEngine: "
                         f"starts detection/remediation beside the local lab (default on the "
                         f"local lab: {DEFAULT_ENGINE}; 'none' for no engine)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: chaos experiments on the local lab or a target")


def _opt(config: pytest.Config, name: str, default: Any = None) -> Any:
    try:
        return config.getoption(name)
    except ValueError:  # plugin fixtures imported without the plugin's options
        return default


@pytest.fixture(scope="session")
def chaos_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Any]:
    if _opt(request.config, "--chaos-target"):
        yield None
        return
    from warden.config import WardenConfig
    from warden.lab import Lab

    home = tmp_path_factory.mktemp("chaos-lab")
    config = WardenConfig.model_validate({"home": str(home),
                                          "lab": {"replicas": 2, "router_port": 0},
                                          "fleet": {"models": ["synth"]},
                                          # Faults alone: runbooks must not move traffic while
                                          # an experiment measures; --chaos-engine adds them.
                                          "remediation": {"enabled": False}})
    with Lab(config, with_traffic=False) as lab:
        yield lab


@pytest.fixture(scope="session")
def chaos_target(request: pytest.FixtureRequest, chaos_lab: Any) -> Target:
    path = _opt(request.config, "--chaos-target")
    target: Target
    if path:
        target = load_target(path)
    else:
        target = LocalTarget(chaos_lab.fleet, router_url=chaos_lab.router_url,
                             db_path=str(chaos_lab.config.db_path))
    warm_up(target)
    return target


@pytest.fixture(scope="session")
def chaos_engine(request: pytest.FixtureRequest) -> Iterator[ChaosEngine]:
    factory = _opt(request.config, "--chaos-engine")
    caps_opt = _opt(request.config, "--chaos-capabilities", "") or ""
    if (not factory and not caps_opt and not _opt(request.config, "--chaos-target")
            and not _opt(request.config, "--chaos-db")
            and isinstance(request.getfixturevalue("chaos_target"), LocalTarget)):
        factory = DEFAULT_ENGINE  # the local lab: the lazily started engine lab
    if factory and factory != "none":
        from chaos.activity import resolve

        lab = request.getfixturevalue("chaos_lab")
        if lab is None:
            raise pytest.UsageError("--chaos-engine starts an engine beside the local lab; "
                                    "with --chaos-target use --chaos-capabilities/--chaos-db")
        with resolve(factory, "--chaos-engine")(lab, lab.config.db_path) as engine:
            yield engine
        return
    caps = frozenset(c for c in caps_opt.split(",") if c)
    db = _opt(request.config, "--chaos-db")
    store = None
    if db:
        from warden.store import Store

        store = Store(db, readonly=True)
    yield ChaosEngine(capabilities=caps, store=store)


@pytest.fixture(scope="session")
def chaos_journal_dir(request: pytest.FixtureRequest) -> Path:
    path = _opt(request.config, "--chaos-journal-dir")
    # Default under the repo's artifacts/ (ignored by git), so CI keeps every journal.
    return Path(path) if path else request.config.rootpath / "artifacts" / "chaos-journals"


@pytest.fixture
def run_experiment(request: pytest.FixtureRequest, chaos_target: Target,
                   chaos_engine: ChaosEngine, chaos_journal_dir: Path
                   ) -> Callable[..., Journal]:
    def run(experiment: str | Path | Experiment, *, expect: str = "passed") -> Journal:
        exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
        detectable = chaos_engine.detectable if exp.requires else None
        ledger = None
        if (set(exp.requires) & chaos_engine.capabilities and not Runner(
                chaos_target, journal_dir=chaos_journal_dir, capabilities=chaos_engine.capabilities,
                detectable=detectable).skip_reasons(exp)):
            chaos_engine.ready()  # a lazy engine starts for the first experiment it can run
            # only an alert still firing on a replica this experiment faults would not fire
            # again; one elsewhere need not be waited out. A fault on a whole model (a surge
            # names a model, no replica) faults no replica: the engine waits out the model's
            # own alerts whatever the victims.
            faults = [a.arguments for a in exp.method if a.type == "fault"]
            victims = {f.get("replica") for f in faults if "replica" in f or "model" not in f}
            chaos_engine.reset(replicas=None if None in victims or not faults else victims)
            if chaos_engine.target is not None:  # the engine watches a lab of its own
                ledger = chaos_journal_dir / "engine-faults.ledger"
        own_lab = ledger is not None
        target = chaos_engine.target if own_lab else chaos_target
        # an engine with a lab of its own watches that lab: its store says nothing of this one
        store = chaos_engine.store if own_lab or chaos_engine.target is None else None
        runner = Runner(target, journal_dir=chaos_journal_dir, ledger_path=ledger,
                        store=store, capabilities=chaos_engine.capabilities,
                        detectable=detectable)
        journal = runner.run(exp)
        for note in chaos_engine.notes:
            request.node.user_properties.append(("chaos_engine", note))
        request.node.user_properties.append(("chaos_journal", journal.path))
        if journal.verdict == "skipped" and expect != "skipped":
            hint = (" (no Warden engine runs beside this target: override the chaos_engine "
                    "fixture)" if set(exp.requires) - chaos_engine.capabilities else "")
            pytest.skip(f"{exp.title}: {'; '.join(journal.reasons)}{hint}")
        if journal.verdict != expect:
            pytest.fail(f"{journal.summary()}\n{format_timeline(journal)}", pytrace=False)
        return journal

    return run


@pytest.fixture(scope="session")
def chaos_containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Triton and Prometheus from their images (testcontainers); skipped without Docker."""
    from chaos.containers import ContainerFleet, docker_unavailable

    reason = docker_unavailable()
    if reason:
        pytest.skip(f"testcontainers flavour: {reason}")
    with ContainerFleet(tmp_path_factory.mktemp("containers")) as fleet:
        yield fleet
