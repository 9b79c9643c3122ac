"""The experiment format: loading, clear errors naming file and key, validation before a run."""

from pathlib import Path

import pytest
import yaml

from chaos.errors import ExperimentError
from chaos.experiment import load_experiment, parse_experiment
from chaos.runner import Runner
from chaos.target import Endpoint, UrlTarget

EXPERIMENTS = sorted((Path(__file__).parents[2] / "chaos" / "experiments").glob("*.yaml"))
RUNBOOKS = ("hung-replica", "replica-p99-drift", "gpu-throttling", "saturation",
            "budget-burn-overload")
FAULTS = ("KillReplica", "HangReplica", "ModelLatency", "ModelErrors", "CpuContention",
          "TrafficSurge", "UnloadModel", "CoolingFailure", "PowerCap", "MemoryLeak",
          "Fragmentation", "XidError", "NetworkDelay")


def dead_target() -> UrlTarget:
    """URLs nobody listens on: validation must not touch them."""
    return UrlTarget(replicas={n: Endpoint(n, "http://127.0.0.1:9", "http://127.0.0.1:9")
                               for n in ("r0", "r1")}, router_url="http://127.0.0.1:9",
                     access_token="t")


def minimal(**over):
    data = {"title": "t", "method": [{"type": "fault", "provider":
                                      "chaos.faults.model:ModelLatency",
                                      "arguments": {"replica": "r0"}}]}
    data.update(over)
    return data


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_shipped_experiment_validates(path, tmp_path):
    exp = load_experiment(path)
    Runner(dead_target(), journal_dir=tmp_path).validate(exp)


def test_suite_covers_every_fault_and_runbook():
    providers = {a.provider.rsplit(":", 1)[1] for p in EXPERIMENTS
                 for a in load_experiment(p).method}
    assert set(FAULTS) <= providers
    runbooks = {a.runbook for p in EXPERIMENTS for a in load_experiment(p).expectations.actions}
    assert set(RUNBOOKS) <= runbooks
    for p in EXPERIMENTS:
        exp = load_experiment(p)
        if exp.expectations.actions:
            assert {"detection", "remediation"} <= set(exp.requires), p.name


@pytest.mark.parametrize("data,msg", [
    ({"method": []}, "title: Field required"),
    (minimal(method=[]), "method: List should have at least 1"),
    (minimal(colour="red"), "colour: Extra inputs"),
    (minimal(requires=["telepathy"]), "requires.0"),
    (minimal(method=[{"type": "fault", "provider": "no_colon"}]), "method.0.provider"),
    (minimal(steady_state_hypothesis={"probes": [{"provider": "a:b", "tolerance":
                                                  {"type": "regex"}}]}),
     "steady_state_hypothesis.probes.0.tolerance"),
    (minimal(expectations={"hypothesis_during": "maybe"}), "expectations.hypothesis_during"),
])
def test_bad_experiments_name_the_key(data, msg):
    with pytest.raises(ExperimentError, match="exp.yaml") as err:
        parse_experiment(data, "exp.yaml")
    assert msg in str(err.value)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: a: b\n")
    with pytest.raises(ExperimentError, match="bad.yaml is not valid YAML"):
        load_experiment(bad)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ExperimentError, match="top level must be a mapping"):
        load_experiment(tmp_path / "list.yaml")
    with pytest.raises(ExperimentError, match="cannot read"):
        load_experiment(tmp_path / "missing.yaml")


@pytest.mark.parametrize("method,msg", [
    ([{"type": "fault", "provider": "chaos.faults.model:ModelLatency",
       "arguments": {"replica": "r0", "latency_facter": 5}}], "unexpected keyword"),
    ([{"type": "fault", "provider": "chaos.faults.model:ModelLatency", "arguments": {}}],
     "missing a required argument: 'replica'"),
    ([{"type": "fault", "provider": "chaos.faults.model:ModelLatency",
       "arguments": {"replica": "r9"}}], "no replica 'r9'"),
    ([{"type": "fault", "provider": "chaos.faults.model:ModelLatency",
       "arguments": {"replica": "r0", "latency_factor": 0.5}}], "latency_factor must be >= 1"),
    ([{"type": "fault", "provider": "chaos.probes:model_ready", "arguments": {}}],
     "not a chaos Fault"),
    ([{"type": "fault", "provider": "chaos.nothere:X"}], "cannot import module"),
    ([{"type": "fault", "provider": "chaos.faults.model:Nope"}], "has no 'Nope'"),
    ([{"type": "action", "provider": "chaos.actions:wait_until",
       "arguments": {"probe": "x:y", "tolerance": 1, "target": "r0"}}], "passed by the runner"),
])
def test_validation_before_anything_runs(method, msg, tmp_path):
    exp = parse_experiment(minimal(method=method), "exp.yaml")
    with pytest.raises(ExperimentError, match="exp.yaml: method\\[0\\]") as err:
        Runner(dead_target(), journal_dir=tmp_path).validate(exp)
    assert msg in str(err.value)


def test_probe_arguments_checked(tmp_path):
    exp = parse_experiment(minimal(steady_state_hypothesis={"probes": [
        {"provider": "chaos.probes:model_ready", "arguments": {"replica": "r0"},
         "tolerance": True}]}), "exp.yaml")
    with pytest.raises(ExperimentError, match=r"probes\[0\].*'model'"):
        Runner(dead_target(), journal_dir=tmp_path).validate(exp)


def test_string_shorthands_for_expectations():
    exp = parse_experiment(minimal(expectations={"alerts": ["A"], "actions": ["rb:step", "rb2"]}))
    assert exp.expectations.alerts[0].alertname == "A"
    assert (exp.expectations.actions[0].runbook, exp.expectations.actions[0].step) == ("rb", "step")
    assert exp.expectations.actions[1].step is None
    assert yaml.safe_load(yaml.safe_dump(exp.model_dump()))["title"] == "t"
