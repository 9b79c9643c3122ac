"""``warden alerts ...`` and ``warden slo``, and no secret in logs or output."""

from __future__ import annotations

import argparse
import logging
import time

import yaml
from prometheus_client import CollectorRegistry

from warden.alerting import cli
from warden.alerting.config import load_alerting_config
from warden.alerting.service import AlertingService
from warden.db import open_db
from warden.records import Alert, AlertStatus, RequestChain, freeze_labels
from warden.store import Store

HMAC = "hmac-" + "S3cr3t" * 3
BEARER = "bearer-" + "T0k3n" * 3


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="warden")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_silence_commands(tmp_path, capsys) -> None:
    db = str(tmp_path / "w.db")
    assert run(["alerts", "silence", "add", "alertname=HighP99Latency", "replica=~r[01]",
                "--duration", "2h", "--comment", "deploy", "--db", db]) == 0
    sid = capsys.readouterr().out.split()[1]
    assert run(["alerts", "silence", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert sid in out and "active" in out and "replica=~r[01]" in out
    assert run(["alerts", "silence", "expire", sid, "--db", db]) == 0
    capsys.readouterr()
    assert run(["alerts", "silence", "list", "--db", db]) == 0
    assert sid not in capsys.readouterr().out  # expired ones hidden by default
    assert run(["alerts", "silence", "list", "--all", "--db", db]) == 0
    assert "expired" in capsys.readouterr().out
    assert run(["alerts", "silence", "add", "nonsense", "--db", db]) == 2
    assert run(["alerts", "silence", "add", "a=b", "--duration", "soon", "--db", db]) == 2
    assert run(["alerts", "silence", "expire", "nope", "--db", db]) == 1
    assert run(["alerts", "outbox", "--db", str(tmp_path / "missing.db")]) == 1


def test_outbox_command_and_no_secret_anywhere(tmp_path, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "w.db"
    cfg = load_alerting_config({
        "receivers": [{"name": "oncall", "url": "http://127.0.0.1:9/hook", "hmac_secret": HMAC,
                       "bearer_token": BEARER, "timeout_s": 0.5}],
        "routes": [{"receiver": "oncall", "group_wait_s": 0}]})
    svc = AlertingService(cfg, open_db(db), registry=CollectorRegistry())
    logging.getLogger("test").info("config: %s / %r", cfg, cfg.receivers[0])
    svc.submit([Alert(freeze_labels({"alertname": "HighP99Latency", "replica": "r0"}), (),
                      time.time(), None, AlertStatus.FIRING)])
    svc.delivery.run_once()  # port 9 refuses: a failed, logged attempt
    assert run(["alerts", "outbox", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 pending, 0 delivered, 0 dead" in out and "oncall" in out
    assert run(["alerts", "outbox", "--json", "--db", str(db)]) == 0
    out += capsys.readouterr().out
    assert '"attempts": 1' in out
    text = out + "\n".join(r.getMessage() for r in caplog.records)
    assert "delivery to oncall failed" in text
    assert HMAC not in text and BEARER not in text


def test_slo_command(tmp_path, capsys) -> None:
    db = tmp_path / "w.db"
    now = time.time()
    with Store(db) as store:  # the engine's store: request chains, half served by lite
        store.write_chains(RequestChain(f"t{i}", now - 3000 + i, "mlp",
                                        "lite" if i % 2 else "full", "r0", 0.01, {},
                                        error=i % 100 == 0) for i in range(3000))
    slos = [{"name": "mlp-avail", "model": "mlp", "kind": "availability", "objective": 0.999},
            {"name": "mlp-latency", "model": "mlp", "kind": "latency", "objective": 0.99,
             "latency_threshold_s": 0.1}]
    conf = tmp_path / "warden.yaml"
    for section in ({"alerting": {"slos": slos}}, {"slos": slos}):  # the lab's place, and top
        conf.write_text(yaml.safe_dump(section))
        assert run(["slo", "--db", str(db), "--config", str(conf)]) == 0
        out = capsys.readouterr().out
        lines = {line.split()[0]: line for line in out.splitlines()[2:]}
        assert "-900.0%" in lines["mlp-avail"]  # 1 % errors against a 0.1 % budget
        assert " 3000 " in lines["mlp-avail"]  # both variants counted
        assert "page:medium" in lines["mlp-avail"] and "page:fast" not in lines["mlp-avail"]
        assert " 0.0% " in lines["mlp-latency"]  # errors count as bad: 1 % of a 1 % budget
    conf.write_text("slos: [{name: x}]")
    assert run(["slo", "--db", str(db), "--config", str(conf)]) == 2
    assert "slos[0]" in capsys.readouterr().out
    conf.write_text(yaml.safe_dump({"slos": slos}))
    assert run(["slo", "--db", str(tmp_path / "none.db"), "--config", str(conf)]) == 1
    assert "no store at" in capsys.readouterr().out
