"""Chaos experiments for Warden: faults, experiments, the runner, journals, the pytest plugin.

Modules (import what you need; this package imports nothing heavy):

* :mod:`chaos.experiment` the YAML format; :mod:`chaos.activity` ``module:func`` resolution and
  argument checks; :mod:`chaos.tolerance` steady-state tolerances;
* :mod:`chaos.faults` the faults; :mod:`chaos.probes` and :mod:`chaos.actions` what
  experiments call; :mod:`chaos.target` the fleet under test (local lab or URLs);
* :mod:`chaos.runner` runs one experiment; :mod:`chaos.ledger` keeps faults revertable across
  crashes; :mod:`chaos.sli`, :mod:`chaos.observed`, :mod:`chaos.expectations` measure and judge;
* :mod:`chaos.journal`, :mod:`chaos.report` the evidence; :mod:`chaos.cli` ``warden chaos``;
  :mod:`chaos.pytest_plugin` the suite in pytest; :mod:`chaos.engine` the engine lab runbook
  experiments run on (traffic, detection, remediation); :mod:`chaos.containers` the Docker
  flavour.
"""

__all__ = [
    "actions",
    "activity",
    "cli",
    "containers",
    "engine",
    "errors",
    "expectations",
    "experiment",
    "faults",
    "journal",
    "ledger",
    "observed",
    "probes",
    "pytest_plugin",
    "report",
    "runner",
    "sli",
    "target",
    "tolerance",
]
