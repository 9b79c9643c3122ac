"""``warden trace show|slowest`` and ``warden metrics query`` over a real SQLite store, run through
``warden.cli.main`` as a user would."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import warden.cli
from collectors.waterfall import BAR_WIDTH, CHILD, OWN, layout
from warden.records import GpuReading, RequestChain, Sample, Stage, freeze_labels
from warden.store import Store

ORDER = [s.value for s in Stage]
STAGES = {"client": 0.020, "router": 0.002, "triton_http": 0.001, "queue": 0.004,
          "compute_input": 0.0005, "compute_infer": 0.010, "compute_output": 0.0005,
          "model_code": 0.008}
GPU = GpuReading(ts=0.0, device="twin0", simulated=True, temperature_c=83.5, power_w=250.0,
                 power_limit_w=300.0, sm_clock_mhz=1215.0, sm_clock_max_mhz=1980.0,
                 mem_clock_mhz=1593.0, utilization=0.91, memory_used_bytes=6 * 2**30,
                 memory_total_bytes=16 * 2**30, throttle_reasons=("hw_thermal",), replica="r1")
LINE = re.compile(r"^(\w+)\s+~([\d.]+)\s+\|(.{%d})\|\s+([\d.]+)$" % BAR_WIDTH)


@pytest.fixture(autouse=True)
def _wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the lead adds the module to COMMAND_MODULES (kept idempotent for after)."""
    mods = tuple(dict.fromkeys((*warden.cli.COMMAND_MODULES, "collectors.trace_cli")))
    monkeypatch.setattr(warden.cli, "COMMAND_MODULES", mods)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "warden.db"
    now = time.time()
    with Store(path) as store:
        store.write_chains([
            RequestChain("t-slow", now - 60, "synth", "full", "r1", 0.020, STAGES, gpu=GPU,
                         span_count=9),
            RequestChain("t-fast", now - 30, "synth", "full", "r0", 0.006,
                         {"triton_http": 0.001, "queue": 0.001, "compute_infer": 0.004},
                         span_count=3),
            RequestChain("t-mlp", now - 10, "mlp", "lite", "r0", 0.050,
                         {"client": 0.050, "compute_infer": 0.030}, error=True, span_count=4),
            RequestChain("t-old", now - 7200, "synth", "full", "r0", 0.900, {"client": 0.9}),
        ])
        store.write_samples(
            [Sample("triton_queue_duration_seconds",
                    freeze_labels({"model": "synth", "variant": "full", "replica": r}),
                    now - 100 + i, 0.001 * (i + 1) * (2 if r == "r1" else 1))
             for r in ("r0", "r1") for i in range(10)]
            + [Sample("triton_queue_duration_seconds", freeze_labels({"replica": "r0"}),
                      now - 3 * 3600, 99.0)]
        )
    return path


def _stage_lines(out: str) -> dict[str, tuple[float, str, float]]:
    rows = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), m.group(3), float(m.group(4)))
    return rows


def test_trace_show_prints_a_waterfall_in_stage_order(db, capsys) -> None:
    assert warden.cli.main(["trace", "show", "t-slow", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    rows = _stage_lines(out)
    assert list(rows) == ORDER  # every stage, client to model code, in that order
    for stage, seconds in STAGES.items():  # the durations shown are the recorded ones
        assert rows[stage][2] == pytest.approx(seconds * 1e3, abs=0.005), stage
    scale = 0.020  # the client's span is the widest interval
    for stage, seconds in STAGES.items():  # bars proportional to the recorded durations
        assert abs(rows[stage][1].count(OWN) - seconds / scale * BAR_WIDTH) <= 1, stage
    assert rows["client"][1] == OWN * BAR_WIDTH
    assert CHILD in rows["router"][1] and CHILD in rows["triton_http"][1]
    # offsets grow along the sequence inside Triton, and model code sits inside compute_infer
    offs = {s: rows[s][0] for s in rows}
    assert offs["queue"] < offs["compute_input"] < offs["compute_infer"] < offs["compute_output"]
    assert offs["compute_infer"] <= offs["model_code"]
    assert offs["model_code"] + 8.0 <= offs["compute_infer"] + 10.0 + 1e-6
    assert "model synth  variant full  replica r1" in out
    gpu = next(line for line in out.splitlines() if line.startswith("gpu"))
    for part in ("twin0", "SIMULATED", "83.5 C", "1215/1980 MHz", "utilisation 91%",
                 "6.00/16.00 GiB", "hw_thermal"):
        assert part in gpu, part


def test_trace_show_partial_chain_says_what_was_not_seen(db, capsys) -> None:
    assert warden.cli.main(["trace", "show", "t-fast", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert list(_stage_lines(out)) == ["triton_http", "queue", "compute_infer"]
    assert "not seen: client, router, compute_input, compute_output, model_code" in out
    assert "no reading attached" in out


def test_unknown_trace_and_missing_store_exit_1(db, tmp_path, capsys) -> None:
    assert warden.cli.main(["trace", "show", "nope", "--db", str(db)]) == 1
    assert "no chain with trace id 'nope'" in capsys.readouterr().err
    assert warden.cli.main(["trace", "show", "x", "--db", str(tmp_path / "absent.db")]) == 1
    assert "cannot open store" in capsys.readouterr().err


def test_default_db_comes_from_the_config_home(db, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WARDEN_HOME", str(db.parent))
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    assert warden.cli.main(["trace", "show", "t-slow"]) == 0
    assert "trace t-slow" in capsys.readouterr().out


def test_trace_slowest_filters_by_model_and_window(db, capsys) -> None:
    assert warden.cli.main(["trace", "slowest", "--db", str(db), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    heads = re.findall(r"^trace (\S+)", out, re.M)
    assert heads == ["t-mlp", "t-slow"]  # slowest first; t-old is outside the default 15m
    assert "ERROR" in out.split("trace t-slow")[0]

    assert warden.cli.main(["trace", "slowest", "--model", "synth", "--db", str(db)]) == 0
    assert re.findall(r"^trace (\S+)", capsys.readouterr().out, re.M) == ["t-slow", "t-fast"]
    assert warden.cli.main(["trace", "slowest", "--since", "1d", "--limit", "1",
                            "--db", str(db)]) == 0
    assert re.findall(r"^trace (\S+)", capsys.readouterr().out, re.M) == ["t-old"]
    assert warden.cli.main(["trace", "slowest", "--model", "nope", "--db", str(db)]) == 1
    assert "no chains for model=nope" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["trace", "slowest", "--since", "5x"],
    ["trace", "slowest", "--since=-5m"],
    ["trace", "slowest", "--since", "0s"],
    ["trace", "slowest", "--limit", "0"],
    ["metrics", "query", "s", "--since", "soon"],
    ["metrics", "query", "s", "--labels", "model"],
])
def test_bad_arguments_exit_2_with_a_clear_message(db, capsys, argv) -> None:
    with pytest.raises(SystemExit) as info:
        warden.cli.main([*argv, "--db", str(db)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid" in err


def test_metrics_query_table_and_stats(db, capsys) -> None:
    assert warden.cli.main(["metrics", "query", "triton_queue_duration_seconds", "--since", "5m",
                            "--labels", "model=synth", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("triton_queue_duration_seconds: 20 samples in 2 series")
    rows = [line for line in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\d ", line)]
    assert len(rows) == 20 and "99" not in " ".join(r.split()[-1] for r in rows)
    assert all("model=synth,replica=r" in r for r in rows)
    stats = {line.split()[0]: line.split()[1:] for line in out.splitlines()
             if line.startswith("model=synth") and len(line.split()) == 8}
    r0 = stats["model=synth,replica=r0,variant=full"]
    r1 = stats["model=synth,replica=r1,variant=full"]
    assert r0[0] == "10" and float(r0[1]) == pytest.approx(0.001)
    assert float(r0[2]) == pytest.approx(0.0055) and float(r0[5]) == pytest.approx(0.010)
    assert float(r1[2]) == pytest.approx(0.011) and float(r1[6]) == pytest.approx(0.020)


def test_metrics_query_narrow_labels_and_errors(db, capsys) -> None:
    assert warden.cli.main(["metrics", "query", "triton_queue_duration_seconds", "--labels",
                            "replica=r1", "--since", "2h", "--max-rows", "3", "--db",
                            str(db)]) == 0
    out = capsys.readouterr().out
    assert "10 samples in 1 series" in out and "(latest 3 shown)" in out
    assert warden.cli.main(["metrics", "query", "triton_queue", "--db", str(db)]) == 1
    assert "similar: triton_queue_duration_seconds" in capsys.readouterr().err
    assert warden.cli.main(["metrics", "query", "triton_queue_duration_seconds", "--since", "30s",
                            "--db", str(db)]) == 1
    assert "no samples" in capsys.readouterr().err


def test_layout_handles_inconsistent_durations() -> None:
    # a client span shorter than what it wraps (clock skew between hosts): nothing negative
    chain = RequestChain("x", 0.0, "m", "full", "r0", 0.001,
                         {"client": 0.001, "router": 0.002, "queue": 0.004, "model_code": 0.01})
    bars = layout(chain)
    assert [b.stage for b in bars] == ["client", "router", "queue", "model_code"]
    assert all(b.start >= 0 and b.span >= 0 for b in bars)


def _ns(ms: float, base: int) -> int:
    return base + int(round(ms * 1e6))


def test_kept_spans_give_measured_offsets(tmp_path, capsys) -> None:
    """Spans as the senders make them -> the joiner's chain -> the store -> exact offsets."""
    from collectors.chains import build_chain
    from warden.records import Span

    base = int((time.time() - 5) * 1e9)
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    spans = [
        Span(tid, "c1", "", "warden.client", "warden-loadgen", _ns(0, base), _ns(20, base),
             {"warden.model": "synth"}),
        Span(tid, "r1", "c1", "warden.router", "warden-router", _ns(1, base), _ns(19, base)),
        Span(tid, "i1", "r1", "InferRequest", "warden-replica-r0", _ns(3, base), _ns(17, base)),
        Span(tid, "m1", "i1", "synth", "warden-replica-r0", _ns(3.5, base), _ns(17, base),
             {"triton.model_name": "synth"}, events=(("QUEUE_START", _ns(3.5, base)),)),
        Span(tid, "k1", "m1", "compute", "warden-replica-r0", _ns(6, base), _ns(17, base),
             events=(("COMPUTE_START", _ns(6, base)), ("COMPUTE_INPUT_END", _ns(6.5, base)),
                     ("COMPUTE_OUTPUT_START", _ns(16.5, base)), ("COMPUTE_END", _ns(17, base)))),
        Span(tid, "p1", "k1", "warden.model", "warden-replica-r0", _ns(8, base), _ns(16, base),
             {"warden.replica": "r0", "warden.variant": "full"}),
    ]
    chain = build_chain(tid, spans)
    db = tmp_path / "w.db"
    with Store(db) as store:
        store.write_chains([chain])
        store.write_spans(spans)
    assert warden.cli.main(["trace", "show", tid, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "~" not in out  # every offset measured
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\w+)\s+([\d.]+)\s+\|(.{%d})\|\s+([\d.]+)$" % BAR_WIDTH, line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(4)))
    assert rows == {
        "client": (0.0, 20.0), "router": (1.0, 4.0), "triton_http": (3.0, 0.5),
        "queue": (3.5, 2.5), "compute_input": (6.0, 0.5), "compute_infer": (6.5, 10.0),
        "compute_output": (16.5, 0.5), "model_code": (8.0, 8.0),
    }
