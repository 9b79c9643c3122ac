"""The suite's replica faults against Triton's own image, for teams with Docker.

Skipped here with the reason (no Docker engine runs on the lab machine): the fixture asks the
engine first. Runs the same experiment files as the lab suite, via a ContainerTarget whose kill
and hang are ``docker kill`` and ``docker pause``.
"""

from pathlib import Path

import pytest

from chaos.containers import docker_unavailable, write_model_repository
from chaos.experiment import load_experiment
from chaos.runner import Runner

EXPERIMENTS = Path(__file__).parents[2] / "chaos" / "experiments"
pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_docker_check_gives_a_reason_or_none():
    reason = docker_unavailable()
    assert reason is None or "Docker" in reason or "testcontainers" in reason


def test_model_repository_has_the_synth_contract(tmp_path):
    repo = write_model_repository(tmp_path)
    cfg = (repo / "synth" / "config.pbtxt").read_text()
    assert 'name: "synth"' in cfg and "dims: [4]" in cfg
    assert "2.0 * x + 1.0" in (repo / "synth_lite" / "1" / "model.py").read_text()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["kill_replica", "hang_replica", "triton_unload"])
def test_experiment_on_containers(name, chaos_containers, tmp_path):
    exp = load_experiment(EXPERIMENTS / f"{name}.yaml")
    exp.steady_state_hypothesis.probes = [p for p in exp.steady_state_hypothesis.probes
                                          if p.provider != "chaos.probes:faults_cleared"]
    target = chaos_containers.target
    target.router_url = target.replica("r0").url  # no router in this flavour
    journal = Runner(target, journal_dir=tmp_path).run(exp)
    assert journal.verdict == "passed", journal.summary()
