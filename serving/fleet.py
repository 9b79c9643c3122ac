"""The fleet: N real Triton replicas on this machine, each its own process group.

Each replica runs ``python -m serving.replica`` (see that module), which starts PyTriton's
bundled ``tritonserver`` and its Python-backend stubs as children. Every replica gets its own
session (process group), so stopping or killing it reaches tritonserver and the stubs too, and
a replica can be hung with SIGSTOP like a wedged pod.

Facts this relies on (DESIGN.md, measured here): the backend stub links ``libpython3.X.so`` and
must find *this* interpreter's copy, so ``LD_LIBRARY_PATH`` starts with ``sysconfig``'s LIBDIR;
``Triton.serve()`` stops on SIGTERM, not SIGINT, and its tritonserver child lingers seconds after,
holding its ports, so a restart waits for the whole group to be gone before reusing the ports.
Triton reports the server ready before PyTriton has loaded the models, so readiness here means
every model (both variants) answers ``/v2/models/{m}/ready``.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from serving.replica import BatchingConfig, ReplicaConfig

__all__ = ["Fleet", "FleetConfig", "Replica", "ReplicaStartError", "free_port"]

logger = logging.getLogger("warden.fleet")

STOP_GRACE_S = 8.0
READY_TIMEOUT_S = 90.0


class ReplicaStartError(RuntimeError):
    """A replica did not become ready; the message carries the tail of its log."""


class FleetConfig(BaseModel):
    """How every replica of the fleet is started."""

    models: list[str] = Field(default_factory=lambda: ["synth", "mlp"])
    otlp_url: str | None = None
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    synth_cost: dict[str, float] = Field(default_factory=dict)
    summary_latencies: bool = False
    trace_rate: int = Field(0, ge=0, description="see ReplicaConfig.trace_rate")
    model_spans: bool = Field(True, description="see ReplicaConfig.model_spans")
    onnx_threads: int = Field(1, ge=1)
    gpu: Literal["twin", "cpu"] = "twin"
    weights_load_s: float = Field(0.0, ge=0, description="see ReplicaConfig.weights_load_s")
    ready_timeout_s: float = Field(READY_TIMEOUT_S, gt=0)
    access_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24),
                              description="guards Triton's statistics/trace/logging APIs")


_LISTEN_PORTS = (20000, 32000)
_port_lock = threading.Lock()
_port_rng = random.Random()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port free right now, chosen *below* the kernel's ephemeral range.

    Why not ``bind(0)``: the kernel then hands out an ephemeral port, the same range outgoing
    connections draw from, and between our check and Triton's own bind a client connection
    (the load generator, a scraper) can take it; Triton then fails with "Address already in
    use" (seen here). Ports below the ephemeral range are only ever taken by listeners.
    """
    low, high = _LISTEN_PORTS
    eph_low, _ = _ephemeral_range()
    high = min(high, eph_low - 1)
    with _port_lock:
        for _ in range(200):
            port = _port_rng.randrange(low, high)
            if not _port_in_use(port):
                return port
    raise RuntimeError(f"no free port in {low}..{high}")


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Replica:
    """One replica's identity, ports and process. Ports survive restarts so URLs stay valid."""

    name: str
    http_port: int
    grpc_port: int
    metrics_port: int
    control_port: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    restarts: int = 0
    hung: bool = False
    log_path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def cold_start_s(self) -> float:
        return self.ready_at - self.started_at if self.ready_at else float("nan")


class Fleet:
    """Start, stop, restart, scale, kill and hang real Triton replicas.

    Thread-safe for the operations remediation and chaos use concurrently. ``on_change`` is
    called with the replica list after any membership change, so a router can follow the fleet.
    """

    #: how many replica starts :attr:`recent_cold_starts` keeps
    RECENT_COLD_STARTS = 8

    def __init__(
        self,
        config: FleetConfig,
        run_dir: Path,
        *,
        on_change: Callable[[list[Replica]], None] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.on_change = on_change
        self._replicas: dict[str, Replica] = {}
        self._next_index = 0
        self._lock = threading.RLock()
        self._launched_groups: set[int] = set()
        #: the newest replica starts' seconds to ready, stopped replicas' included: a cold start
        #: belongs to the deployment, not to the survivors (after a scale-in they were often the
        #: first replicas, ~6 s alone on an idle host, against 10-13 s for those started under
        #: load; reading the survivors halved the predictive scaler's lead)
        self.recent_cold_starts: deque[float] = deque(maxlen=self.RECENT_COLD_STARTS)
        atexit.register(self.stop_all)

    # -- queries -----------------------------------------------------------------------------

    @property
    def replicas(self) -> list[Replica]:
        with self._lock:
            return list(self._replicas.values())

    def get(self, name: str) -> Replica:
        with self._lock:
            try:
                return self._replicas[name]
            except KeyError:
                raise KeyError(f"no replica named {name!r}; have {sorted(self._replicas)}") from None

    def model_names(self) -> list[str]:
        """Every model Triton serves, both variants: ``synth``, ``synth_lite``, ..."""
        return [n for m in self.config.models for n in (m, f"{m}_lite")]

    def alive_groups(self) -> list[int]:
        """Process groups this fleet ever launched that still have a live process."""
        return sorted(g for g in self._launched_groups if _group_alive(g))

    def is_ready(self, replica: Replica, timeout: float = 1.0) -> bool:
        if not replica.running or replica.hung:
            return False
        try:
            for model in self.model_names():
                url = f"{replica.url}/v2/models/{model}/ready"
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    if resp.status != 200:
                        return False
        except (urllib.error.URLError, OSError):
            return False
        return True

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, n: int) -> list[Replica]:
        """Start ``n`` new replicas in parallel and wait until all are ready."""
        with self._lock:
            new = [self._new_replica() for _ in range(n)]
            for replica in new:
                self._launch(replica)
        for replica in new:
            self._wait_ready(replica)
        self._changed()
        return new

    def scale(self, n: int) -> list[Replica]:
        """Add or remove replicas (newest first) until there are ``n``."""
        if n < 0:
            raise ValueError(f"replica count must be >= 0, got {n}")
        current = self.replicas
        if n > len(current):
            self.start(n - len(current))
        else:
            for replica in sorted(current, key=lambda r: r.started_at)[n:]:
                self.remove(replica.name)
        return self.replicas

    def remove(self, name: str) -> None:
        replica = self.get(name)
        self._terminate(replica, graceful=True)
        with self._lock:
            self._replicas.pop(name, None)
        self._changed()

    def restart(self, name: str, *, wait: bool = True) -> Replica:
        """Stop (or reap a killed) replica and start it again on the same ports."""
        replica = self.get(name)
        self._terminate(replica, graceful=replica.running and not replica.hung)
        replica.restarts += 1
        self._launch(replica)
        if wait:
            self._wait_ready(replica)
        return replica

    def kill(self, name: str) -> None:
        """SIGKILL the replica's whole process group: a crash, not a shutdown."""
        replica = self.get(name)
        if replica.process is not None:
            self._signal_group(replica, signal.SIGKILL)
            replica.process.wait(timeout=10)

    def hang(self, name: str) -> None:
        """SIGSTOP the replica's process group: it keeps its sockets and answers nothing."""
        replica = self.get(name)
        self._signal_group(replica, signal.SIGSTOP)
        replica.hung = True

    def resume(self, name: str) -> None:
        replica = self.get(name)
        self._signal_group(replica, signal.SIGCONT)
        replica.hung = False

    def stop_all(self) -> None:
        """Stop every replica in parallel; idempotent, safe from atexit and signal handlers."""
        with self._lock:
            replicas = list(self._replicas.values())
            self._replicas.clear()
        threads = [threading.Thread(target=self._terminate, args=(r, True)) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if replicas:
            self._changed()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # -- internals ---------------------------------------------------------------------------

    def _new_replica(self) -> Replica:
        name = f"r{self._next_index}"
        self._next_index += 1
        ports = [free_port() for _ in range(4)]
        while len(set(ports)) < 4:
            ports = [free_port() for _ in range(4)]
        replica = Replica(name, *ports)
        self._replicas[name] = replica
        return replica

    def _launch(self, replica: Replica) -> None:
        for port in (replica.http_port, replica.grpc_port, replica.metrics_port,
                     replica.control_port):
            deadline = time.monotonic() + 15
            while _port_in_use(port) and time.monotonic() < deadline:
                time.sleep(0.2)
        cfg = ReplicaConfig(
            name=replica.name,
            http_port=replica.http_port,
            grpc_port=replica.grpc_port,
            metrics_port=replica.metrics_port,
            control_port=replica.control_port,
            models=self.config.models,
            model_dir=self.run_dir / "models",
            otlp_url=self.config.otlp_url,
            batching=self.config.batching,
            synth_cost=self.config.synth_cost,
            summary_latencies=self.config.summary_latencies,
            trace_rate=self.config.trace_rate,
            model_spans=self.config.model_spans,
            onnx_threads=self.config.onnx_threads,
            access_token=self.config.access_token,
            gpu=self.config.gpu,
            weights_load_s=self.config.weights_load_s,
        )
        (self.run_dir / "replicas").mkdir(parents=True, exist_ok=True)
        cfg_path = self.run_dir / "replicas" / f"{replica.name}.json"
        cfg_path.write_text(cfg.model_dump_json())
        replica.log_path = self.run_dir / "replicas" / f"{replica.name}.log"
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p
        )
        # PyTriton's backend-stub spans otherwise wait 5 s in their batch exporter, which
        # leaves chains without their model-side spans for that long.
        env.setdefault("OTEL_BSP_SCHEDULE_DELAY", "200")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")) if p
        )
        log = open(replica.log_path, "ab")
        replica.process = subprocess.Popen(
            [sys.executable, "-m", "serving.replica", str(cfg_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        self._launched_groups.add(replica.process.pid)
        replica.hung = False
        replica.started_at = time.monotonic()
        replica.ready_at = 0.0
        logger.info("replica %s starting (pid %s, http %s)", replica.name, replica.pid,
                    replica.http_port)

    def _wait_ready(self, replica: Replica) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        while time.monotonic() < deadline:
            if not replica.running:
                raise ReplicaStartError(f"replica {replica.name} exited during start:\n"
                                        + self._log_tail(replica))
            if self.is_ready(replica):
                replica.ready_at = time.monotonic()
                with self._lock:
                    self.recent_cold_starts.append(replica.cold_start_s)
                logger.info("replica %s ready in %.1f s", replica.name, replica.cold_start_s)
                return
            time.sleep(0.25)
        self._terminate(replica, graceful=False)
        raise ReplicaStartError(f"replica {replica.name} not ready in "
                                f"{self.config.ready_timeout_s:.0f} s:\n" + self._log_tail(replica))

    def _log_tail(self, replica: Replica, lines: int = 30) -> str:
        if replica.log_path is None or not replica.log_path.exists():
            return "(no log)"
        return "\n".join(replica.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _signal_group(self, replica: Replica, sig: int) -> None:
        if replica.process is None:
            return
        try:
            os.killpg(replica.process.pid, sig)
        except ProcessLookupError:
            pass

    def _terminate(self, replica: Replica, graceful: bool) -> None:
        """Stop the replica's whole process group: SIGTERM, grace period, then SIGKILL."""
        proc = replica.process
        if proc is None:
            return
        pgid = proc.pid
        if replica.hung:
            self._signal_group(replica, signal.SIGCONT)
            replica.hung = False
        if graceful and proc.poll() is None:
            self._signal_group(replica, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + (2.0 if graceful else 0.0)
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            self._signal_group(replica, signal.SIGKILL)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.error("replica %s (pid %s) did not die after SIGKILL", replica.name, pgid)
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self.replicas)
            except Exception:  # a listener must not break fleet operations
                logger.exception("fleet on_change listener failed")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

