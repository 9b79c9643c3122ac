"""Traffic surge: an extra open-loop load generator at ``factor`` x ``rate`` until reverted.

Open loop (``serving.loadgen``) so the surge does not politely slow down when the fleet does,
which is what real users do not do either.

The generator runs in a process of its own (``python -m chaos.faults.surge``): other clients'
traffic must not share a GIL with the runner's SLI probes and the lab's own load generator,
or the surge would slow the clients that measure it, not only the fleet (measured on 2 cores:
the lab's client-side P50 ran 100-400 ms above the router's own under a surge generated in the
same process). It still dies with the runner: the kernel sends it SIGTERM when the process that
started it dies (``PR_SET_PDEATHSIG``), and its pid goes to the ledger for a cleanup, which
stops only processes carrying this fault's marker.

``traced: false`` sends the surge's requests with a trace context whose sampled flag is off, as
a sampling client's would be: the router records no span and passes nothing on, so the surge
costs no trace pipeline work, and request chains (detection, the SLO) cover the lab's traced
traffic, which the surge slows as much as its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from chaos.errors import ActivityFailed, FaultUnavailable
from chaos.faults.base import Fault
from chaos.target import Target

__all__ = ["TrafficSurge"]

MARKER = "warden-chaos-surge"
STOP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0  # a Python that imports numpy and tritonclient, on a loaded 2-core box


def _is_ours(pid: int) -> bool:
    try:
        return MARKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class TrafficSurge(Fault):
    """Send ``rate * factor`` requests per second of ``model`` to the router (or ``replica``),
    each with ``items`` rows (a client that batches its inputs: the model works ``items``
    times as hard per request, the CPUs that route and trace requests do not)."""

    def __init__(self, target: Target, *, rate: float = 20.0, factor: float = 3.0,
                 model: str = "synth", replica: str | None = None, seed: int = 7,
                 traced: bool = True, items: int = 1) -> None:
        super().__init__(target)
        if rate <= 0 or factor <= 0:
            raise ValueError("rate and factor must be > 0")
        if not 1 <= items <= 64:
            raise ValueError(f"items must be in [1, 64] (the batcher's largest batch), got {items}")
        self.items = items
        self.url = target.replica(replica).url if replica else target.router_url
        self.rate, self.factor, self.model, self.seed = rate, factor, model, seed
        self.traced = traced
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._log: Any | None = None

    def available(self) -> str | None:
        return None if self.url else "no router_url in target and no replica given"

    def inject(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if not self.url:
            raise FaultUnavailable(self.available() or "")
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        cmd = [sys.executable, "-m", "chaos.faults.surge", self.url,
               "--rate", str(self.rate * self.factor), "--model", self.model,
               "--seed", str(self.seed), "--items", str(self.items), MARKER]
        if not self.traced:
            cmd.insert(-1, "--untraced")
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=self._log)
        self._pid = self._proc.pid
        # The surge starts when its first requests go out, not when Python does (3-5 s later
        # here): time to detect counts from the injection.
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else b""
        self._proc.stdout.close()
        if line.strip() != b"ready":
            self.revert()  # raises with its stderr if it died
            raise ActivityFailed(f"the surge process did not start within {START_TIMEOUT_S:g} s")

    def revert(self) -> None:
        """Stop the surge; raises ``ActivityFailed`` with its stderr if it had died on its own
        (the surge the experiment measured did not run)."""
        proc, self._proc = self._proc, None
        log, self._log = self._log, None
        died = None
        if proc is not None:
            died = proc.poll()
            if died is None:
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        elif self._pid is not None and _is_ours(self._pid):  # from the ledger: another runner's
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
        self._pid = None
        if log is not None:
            log.seek(0)
            tail = log.read()[-1500:].decode(errors="replace")
            log.close()
            if died is not None and died > 0:  # it failed; a signal (a cleanup's) is no news
                raise ActivityFailed(f"the surge process exited early ({died}): {tail}")

    def state(self) -> dict[str, Any]:
        return {"pid": self._pid}

    def restore(self, state: dict[str, Any]) -> None:
        self._pid = int(state["pid"]) if state.get("pid") else None

    def describe(self) -> str:
        rows = f" x {self.items} rows" if self.items > 1 else ""
        return f"traffic surge {self.rate * self.factor:g}/s{rows} of {self.model} to {self.url}"


def _unsampled_tracer() -> Any:
    """A tracer whose spans have valid ids and the sampled flag off (a sampling client's)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    return TracerProvider(sampler=ALWAYS_OFF).get_tracer("warden-chaos-surge")


def main(argv: list[str] | None = None) -> int:
    """The surge process: load until SIGTERM (or until the runner that started it dies)."""
    parser = argparse.ArgumentParser(prog="python -m chaos.faults.surge")
    parser.add_argument("url")
    parser.add_argument("marker", help="names the process as this fault's, for a cleanup")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--model", default="synth")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--untraced", action="store_true")
    parser.add_argument("--items", type=int, default=1)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    from serving.loadgen import LoadGenerator, LoadProfile

    gen = LoadGenerator(args.url, LoadProfile(kind="constant", rate=args.rate),
                        {args.model: 1.0}, seed=args.seed, timeout_s=args.timeout_s,
                        tracer=_unsampled_tracer() if args.untraced else None, items=args.items)
    gen.start()
    with contextlib.suppress(OSError):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    while not stop.wait(0.5) and os.getppid() == parent:  # orphaned: the runner died
        pass
    gen.stop(timeout=args.timeout_s + 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
