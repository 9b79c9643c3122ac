"""``warden eval nab`` end to end on a tiny NAB-layout corpus built in the test."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from anomaly.cli import nab_detector_names, register


def make_corpus(root) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    windows = {}
    for cat, name, jump in (("catA", "one.csv", True), ("catB", "two.csv", False)):
        ts = pd.date_range("2024-01-01", periods=600, freq="5min")
        v = 10 + rng.normal(0, 1, 600)
        if jump:
            v[450:] += 15
        (root / "data" / cat).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(
            root / "data" / cat / name, index=False
        )
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        windows[f"{cat}/{name}"] = [[ts[430].strftime(fmt), ts[470].strftime(fmt)]] if jump else []
    (root / "windows.json").write_text(json.dumps(windows))
    return str(root / "data"), str(root / "windows.json")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="warden")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_eval_nab_writes_results_and_prints_profiles(tmp_path, capsys) -> None:
    data, windows = make_corpus(tmp_path)
    out = tmp_path / "out"
    args = parse(["eval", "nab", "--data", data, "--windows", windows, "--out", str(out), "--detector", "changepoint"])
    assert args.func(args) == 0
    printed = capsys.readouterr()
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate", "catA", "catB"):
        assert profile in printed.out
    assert "2/2" in printed.err  # progress on stderr
    result = pd.read_csv(out / "catA" / "warden_one.csv")
    assert list(result.columns) == ["timestamp", "value", "anomaly_score"]
    assert len(result) == 600 and result["anomaly_score"].between(0, 1).all()
    assert result["anomaly_score"].iloc[450:470].max() >= 0.5  # the jump is found
    row = next(line for line in printed.out.splitlines() if line.startswith("changepoint"))
    assert float(row.split()[1]) > 50.0  # standard score of a detector that finds the only window


def test_eval_nab_all_detectors_get_their_own_folders(tmp_path, capsys) -> None:
    data, windows = make_corpus(tmp_path)
    out = tmp_path / "out"
    args = parse(["eval", "nab", "--data", data, "--windows", windows, "--out", str(out), "--detector", "all"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    for name in nab_detector_names():
        assert (out / name / "catB" / "warden_two.csv").is_file()
        assert any(line.startswith(name + " ") for line in text.splitlines())


@pytest.mark.parametrize("bad", ["unknown detector", "missing windows file"])
def test_eval_nab_bad_arguments_exit_2(tmp_path, capsys, bad) -> None:
    data, windows = make_corpus(tmp_path)
    if bad == "missing windows file":
        windows = str(tmp_path / "missing.json")
    detector = "nope" if bad == "unknown detector" else "changepoint"
    args = parse(["eval", "nab", "--data", data, "--windows", windows, "--out", str(tmp_path / "o"), "--detector", detector])
    assert args.func(args) == 2
    assert "warden eval nab" in capsys.readouterr().err
