"""The lab: a real Triton fleet, its router, its traffic and its telemetry, as one.

``warden up`` runs it on a laptop; the chaos suites use it as their staging target; the
integration tests start it with small settings. Components start in dependency order and stop in
reverse, each stop guarded so one failure cannot leave processes behind. The lab writes
``lab.json`` in its home so other commands (``warden fleet status``) can find it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.fleet import Fleet, Replica, free_port
from serving.loadgen import LoadGenerator
from serving.router import RouterConfig
from serving.router.process import RouterProcess
from serving.router_client import RouterAdmin
from warden.config import WardenConfig
from warden.detection import AlertSink
from warden.engine import TickHook
from warden.lab_telemetry import Telemetry

__all__ = ["Lab", "LabInfo", "read_lab_info"]

logger = logging.getLogger("warden.lab")


@dataclass
class LabInfo:
    """Where everything listens; saved as ``lab.json``."""

    router_url: str
    replicas: dict[str, dict[str, Any]]
    otlp_url: str | None = None
    db_path: str = ""
    metrics_url: str = ""
    dashboard_url: str = ""
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def read_lab_info(path: Path) -> LabInfo:
    """Read ``lab.json``; raises ``FileNotFoundError`` with a hint when no lab runs."""
    if not path.exists():
        raise FileNotFoundError(f"no lab state at {path}: is `warden up` running?")
    return LabInfo(**json.loads(path.read_text()))


def _replica_entry(r: Replica) -> dict[str, Any]:
    return {"url": r.url, "metrics_url": r.metrics_url, "control_url": r.control_url,
            "pid": r.pid, "cold_start_s": round(r.cold_start_s, 2)}


class Lab:
    """Fleet + router (+ traffic). Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        config: WardenConfig,
        *,
        with_traffic: bool = True,
        with_telemetry: bool = True,
        router_port: int | None = None,
        hooks: Sequence[TickHook] = (),
        alert_sinks: Sequence[AlertSink] = (),
        with_dashboard: bool = False,
    ) -> None:
        self.config = config
        self.with_traffic = with_traffic
        self.otlp_url: str | None = None
        self.router_port = config.lab.router_port if router_port is None else router_port
        self.home = config.home
        self.telemetry = (Telemetry(config.db_path, config.home, hooks=hooks,
                                    alert_sinks=alert_sinks, alerting=config.alerting,
                                    remediation=config.remediation)
                          if with_telemetry else None)
        self.fleet = Fleet(config.fleet.model_copy(), self.home, on_change=self._fleet_changed)
        self.with_dashboard = with_dashboard
        self.dashboard: Any | None = None
        self.dashboard_url = ""
        self.router: RouterProcess | None = None
        self.router_url = ""
        self.admin: RouterAdmin | None = None
        self.loadgen: LoadGenerator | None = None
        self._tracer_provider: Any | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LabInfo:
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            if self.telemetry is not None:
                self.otlp_url = self.telemetry.start_receiver()
                self.fleet.config.otlp_url = self.otlp_url
            self.fleet.start(self.config.lab.replicas)
            self._start_router()
            self._sync_router(self.fleet.replicas)
            if self.telemetry is not None:
                self.telemetry.start_engine(self.fleet.replicas, fleet=self.fleet,
                                            admin=self.admin)
            if self.with_traffic:
                self._start_traffic()
            if self.with_dashboard:
                self._start_dashboard()
        except BaseException:
            self.stop()
            raise
        info = self.info()
        self.config.lab_state_path.write_text(info.to_json())
        return info

    def stop(self) -> None:
        """Stop everything, newest first; never raises, so every step gets its turn."""
        steps = [self._stop_dashboard, self._stop_traffic, self._stop_router,
                 self.fleet.stop_all]
        if self.telemetry is not None:
            steps.append(self.telemetry.stop)
        for step in steps:
            try:
                step()
            except Exception:
                logger.exception("lab: stopping %s failed", getattr(step, "__name__", step))
        try:
            self.config.lab_state_path.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def info(self) -> LabInfo:
        return LabInfo(
            router_url=self.router_url,
            replicas={r.name: _replica_entry(r) for r in self.fleet.replicas},
            otlp_url=self.otlp_url,
            db_path=str(self.config.db_path),
            metrics_url=self.telemetry.metrics_url if self.telemetry else "",
            dashboard_url=self.dashboard_url,
        )

    def wait_until_armed(self, models: tuple[str, ...] = ("synth",), timeout_s: float = 90.0,
                         ) -> bool:
        """Block until detection has learned a baseline for every replica of ``models``.

        Why not a fixed warm-up sleep: how long learning takes depends on each replica's share
        of the traffic and on the machine's load, and a fault injected before a baseline is
        learned becomes that baseline. ``False`` on timeout (or with detection off).
        """
        det = self.telemetry.detection if self.telemetry is not None else None
        deadline = time.monotonic() + timeout_s
        while det is not None and time.monotonic() < deadline:
            if all(det.armed((m, r.name)) for m in models for r in self.fleet.replicas):
                return True
            time.sleep(0.5)
        return False

    def run_until_interrupted(self) -> None:
        """Block until Ctrl-C or SIGTERM; the caller stops the lab afterwards."""
        stop = {"now": False}

        def on_signal(signum: int, frame: Any) -> None:
            stop["now"] = True

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop["now"]:
                time.sleep(0.2)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    # -- router --------------------------------------------------------------------------------

    def _start_router(self) -> None:
        router_cfg = RouterConfig(policy=self.config.lab.router_policy,
                                  lite_models=set(self.config.fleet.models),
                                  ready_models=self.fleet.model_names(),
                                  trace_deep_ratio=self.config.lab.trace_deep_ratio)
        self.router = RouterProcess(router_cfg, port=self.router_port or 0,
                                    otlp_endpoint=self.otlp_url)
        self.router_url = self.router.url
        self.admin = RouterAdmin(self.router_url)
        logger.info("router listening on %s (pid %s)", self.router_url, self.router.pid)

    def _fleet_changed(self, replicas: list[Replica]) -> None:
        self._sync_router(replicas)
        if self.telemetry is not None:
            self.telemetry.follow(replicas)

    def _sync_router(self, replicas: list[Replica]) -> None:
        if self.admin is not None:
            self.admin.sync_replicas({r.name: r.url for r in replicas})

    def _stop_router(self) -> None:
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        if self.router is not None:
            self.router.stop()
            self.router = None

    # -- dashboard -----------------------------------------------------------------------------

    def _start_dashboard(self) -> None:
        from dashboard.launch import start_dashboard, wait_ready

        port = self.config.lab.dashboard_port or free_port()
        self.dashboard_url = f"http://127.0.0.1:{port}"
        log = open(self.home / "dashboard.log", "ab")
        self.dashboard = start_dashboard(self.config.db_path, port=port, home=self.home, log=log)
        log.close()
        wait_ready(self.dashboard, self.dashboard_url, timeout_s=60)

    def _stop_dashboard(self) -> None:
        if self.dashboard is not None:
            from dashboard.launch import stop_dashboard

            stop_dashboard(self.dashboard)
            self.dashboard = None

    # -- traffic -------------------------------------------------------------------------------

    def _start_traffic(self) -> None:
        tracer = None
        if self.otlp_url and self.config.lab.tracing:
            from serving.spans import SpanRecorder  # lean: a client span for every request

            self._tracer_provider = SpanRecorder(self.otlp_url, "warden-loadgen")
            tracer = self._tracer_provider
        self.loadgen = LoadGenerator(self.router_url, self.config.lab.traffic,
                                     self.config.lab.traffic_models, tracer=tracer)
        self.loadgen.start()

    def _stop_traffic(self) -> None:
        if self.loadgen is not None:
            self.loadgen.stop()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
            self._tracer_provider = None
