"""``warden traces serve`` as a real process, then ``warden store info|prune`` on its store."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from collectors.cli import register

FIX = Path(__file__).parents[1] / "fixtures" / "triton"
RUN = ("import argparse, sys; from collectors.cli import register; "
       "p = argparse.ArgumentParser(); register(p.add_subparsers()); "
       "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    return p.parse_args(list(argv))


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_traces_serve_process_then_store_info_and_prune(tmp_path, capsys) -> None:
    db = tmp_path / "w.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", RUN, "traces", "serve", "--db", str(db),
                             "--port", str(port), "--settle-s", "0", "--token", "t"],
                            cwd=Path(__file__).parents[2])
    try:
        url = f"http://127.0.0.1:{port}/v1/traces"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        for f in sorted(FIX.glob("otlp_*")):
            ctype = "application/json" if f.suffix == ".json" else "application/x-protobuf"
            r = httpx.post(url, content=f.read_bytes(),
                           headers={"Content-Type": ctype, "Authorization": "Bearer t"})
            assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    args = _parse("store", "info", "--db", str(db))
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"]["chains"] == 3 and info["size_bytes"] > 0
    args = _parse("store", "prune", "--db", str(db), "--older-than-s", "0")
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["chains"] == 3
