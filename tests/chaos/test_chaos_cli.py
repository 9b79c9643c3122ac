"""``warden chaos run|report|revert`` through the CLI's own entry point (in process)."""

import argparse
import json

from chaos.cli import main, register
from chaos.ledger import Ledger
from chaos.target import UrlTarget


def test_register_adds_the_chaos_subcommands():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["chaos", "run", "a.yaml", "--target", "t.json"])
    assert args.files == ["a.yaml"] and callable(args.func)
    assert parser.parse_args(["chaos", "report", "j.json", "--png", "o.png"]).png == "o.png"


def test_run_rejects_an_invalid_file_before_anything(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmethod: []\n")
    assert main(["run", str(bad), "--target", str(tmp_path / "none.json")]) == 2
    assert "bad.yaml: method" in capsys.readouterr().err


def test_run_against_a_target_file_and_report(tmp_path, capsys):
    flag = tmp_path / "flag"
    exp = tmp_path / "exp.yaml"
    exp.write_text(json.dumps({  # JSON is YAML
        "title": "cli file fault",
        "steady_state_hypothesis": {"probes": [{"provider": "chaos_helpers:file_absent",
                                                "arguments": {"path": str(flag)},
                                                "tolerance": True}]},
        "method": [{"type": "fault", "provider": "chaos_helpers:FileFault",
                    "arguments": {"path": str(flag)}}],
        "watch": {"duration_s": 0.2, "poll_s": 0.05},
        "expectations": {"hypothesis_during": "breaks"}}))
    target = UrlTarget().write(tmp_path / "target.json")
    assert main(["run", str(exp), "--target", str(target), "--journal-dir",
                 str(tmp_path / "j")]) == 0
    assert "cli file fault  passed" in capsys.readouterr().out
    journal = next((tmp_path / "j").glob("*.json"))
    assert main(["report", str(journal), "--png", str(tmp_path / "t.png")]) == 0
    out = capsys.readouterr().out
    assert "fault_injected" in out and "hypothesis_after" in out
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert main(["report", str(tmp_path / "nope.json")]) == 2


def test_revert_with_a_clean_ledger_and_a_bad_target(tmp_path, capsys):
    target = UrlTarget().write(tmp_path / "target.json")
    assert main(["revert", "--ledger", str(tmp_path / "l"), "--target", str(target)]) == 0
    assert "nothing to revert" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{}")
    assert main(["revert", "--ledger", str(tmp_path / "l"), "--target",
                 str(tmp_path / "bad.json")]) == 2
    assert "needs a 'replicas' mapping" in capsys.readouterr().err


def test_revert_reverts_a_leftover(tmp_path, capsys):
    flag = tmp_path / "flag"
    flag.write_text("on")
    Ledger(tmp_path / "l").injecting("chaos_helpers:FileFault", {"path": str(flag)}, UrlTarget())
    target = UrlTarget().write(tmp_path / "target.json")
    assert main(["revert", "--ledger", str(tmp_path / "l"), "--target", str(target)]) == 0
    assert not flag.exists()
    assert "reverted chaos_helpers:FileFault" in capsys.readouterr().out


def test_inline_and_file_targets(tmp_path, monkeypatch):
    import pytest

    from chaos.errors import FaultUnavailable, TargetError
    from chaos.target import load_target

    monkeypatch.setenv("WARDEN_TRITON_ACCESS_TOKEN", "tok")
    t = load_target("router=http://h:1,r0=http://h:2|http://h:3,r1=http://h:4/")
    assert t.router_url == "http://h:1" and t.access_token == "tok"
    assert (t.replica("r0").control_url, t.replica("r1").url) == ("http://h:3", "http://h:4")
    with pytest.raises(FaultUnavailable, match="no pid known"):
        t.kill("r0")
    with pytest.raises(FaultUnavailable, match="only the process that owns the fleet"):
        t.restart("r0")
    with pytest.raises(TargetError, match="expected NAME=URL"):
        load_target("r0=ftp://x")
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps({"router_url": "http://h:1", "replicas": {
        "r0": {"url": "http://h:2", "control_url": "http://h:3", "pid": 12345}}}))
    t2 = load_target(lab, access_token="a")
    assert t2.replica("r0").pid == 12345 and t2.access_token == "a"
