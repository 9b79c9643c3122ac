"""The chaos suite on the real local lab: one experiment per fault, one per runbook.

Every experiment runs against the session's lab (two real Triton replicas and the router);
each writes its journal. Fault experiments prove the fault bites (the steady state breaks, or
the SLO is violated) and that reverting restores it. Runbook experiments (``requires:``) run in
test_chaos_runbooks.py, against the engine's own lab. Long experiments (``long: true``) run
too, in CI as everywhere: ``long`` only budgets them a longer timeout.
"""

from pathlib import Path

import pytest

from chaos.experiment import load_experiment
from chaos.faults.replica import DIED_ON_RESUME
from chaos.journal import Journal
from chaos.probes import faults_cleared, gpu_fault_state, model_ready

EXPERIMENTS = [p for p in sorted((Path(__file__).parents[2] / "chaos" / "experiments")
                                 .glob("*.yaml")) if not load_experiment(p).requires]
ACTIVE_GPU_KEYS = ("cooling_failure", "power_cap_w", "memory_leak_mib_per_s", "fragmentation",
                   "xid")


def _params():
    for path in EXPERIMENTS:
        exp = load_experiment(path)
        marks = [pytest.mark.chaos, pytest.mark.slow,
                 pytest.mark.timeout(240 if exp.long else 120)]
        yield pytest.param(path, marks=marks, id=path.stem)


def assert_lab_clean(target):
    for name in target.replicas:
        assert target.is_running(name), f"{name} not running after the experiment"
        assert model_ready(target, replica=name, model="synth"), f"{name} does not serve synth"
        assert faults_cleared(target, replica=name), f"model faults left on {name}"
        state = gpu_fault_state(target, replica=name)
        assert not any(k in state for k in ACTIVE_GPU_KEYS), f"GPU faults left on {name}: {state}"


@pytest.mark.parametrize("path", list(_params()))
def test_experiment(request, path, run_experiment, chaos_target):
    try:
        journal: Journal = run_experiment(path)
    except pytest.fail.Exception:
        failed = Journal.load(dict(request.node.user_properties)["chaos_journal"])
        died = [r for r in failed.reasons if DIED_ON_RESUME in r]
        if not died:
            raise
        # Triton aborted on SIGCONT (see chaos/faults/replica.py): journaled, and restarted
        assert_lab_clean(chaos_target)
        pytest.xfail(f"upstream Triton abort on resume, recorded: {died[0]}")
    exp = load_experiment(path)
    saved = Journal.load(journal.path)
    assert saved.verdict == "passed"
    kinds = [e.kind for e in saved.timeline]
    assert kinds.count("fault_injected") == len([a for a in exp.method if a.type == "fault"])
    assert kinds.count("fault_injected") == kinds.count("fault_reverted")
    assert [h.phase for h in saved.hypotheses] == ["before", "during", "after"]
    assert saved.hypotheses[0].ok and saved.hypotheses[2].ok
    if exp.expectations.hypothesis_during == "breaks":
        assert not saved.hypotheses[1].ok
    if exp.expectations.min_slo_violation_s:
        assert saved.slo_violation_s >= exp.expectations.min_slo_violation_s
        assert saved.time_to_recover_s is not None
    assert saved.sli, "SLI windows recorded"
    assert_lab_clean(chaos_target)
