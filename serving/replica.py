"""One replica: a real ``tritonserver`` (PyTriton's bundled binary) serving the lab's models.

Run as its own process by the fleet (``python -m serving.replica CONFIG_JSON``). Besides Triton's
HTTP, gRPC and metrics ports, a replica serves a small control endpoint on loopback:

    GET    /healthz      -> {"replica": ..., "pid": ...}
    GET    /faults       -> the faults now injected into its model code
    POST   /faults       -> set faults, e.g. {"latency_factor": 5}; 400 on bad input
    DELETE /faults       -> clear them
    GET    /gpu          -> the simulated GPU's reading (when the replica runs on the twin)
    GET|POST|DELETE /gpu/faults -> the twin's faults, e.g. {"cooling_failure": true}

Why a process per replica: a replica must be killable, hangable (SIGSTOP) and restartable on its
own, exactly like a pod. Why SIGTERM and not SIGINT: ``Triton.serve()`` ignores SIGINT (see
DESIGN.md); the fleet sends SIGTERM, and the replica asks the kernel to send it SIGTERM too if the
fleet process dies, so no replica outlives its fleet.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from serving.faults import ModelFaultState
from serving.models import CpuDevice, Device, SynthCost, build_model_specs
from serving.pytriton_spans import use_lean_stub_spans, use_recorder_for_proxy
from serving.spans import SpanRecorder

__all__ = ["BatchingConfig", "ReplicaConfig", "main"]

logger = logging.getLogger("warden.replica")
PR_SET_PDEATHSIG = 1
MAX_CONTROL_BODY = 65536


class BatchingConfig(BaseModel):
    """Triton's dynamic batcher for every model of the replica."""

    enabled: bool = True
    max_batch_size: int = Field(64, ge=1)
    preferred_batch_sizes: list[int] = Field(default_factory=lambda: [16, 32, 64])
    max_queue_delay_us: int = Field(2000, ge=0)


class ReplicaConfig(BaseModel):
    name: str
    http_port: int
    grpc_port: int
    metrics_port: int
    control_port: int
    models: list[str] = Field(default_factory=lambda: ["synth", "mlp"])
    model_dir: Path
    otlp_url: str | None = None
    trace_rate: int = Field(0, ge=0, description=(
        "Triton traces every request that carries a traceparent; with rate N > 0 it also "
        "starts its own trace for every Nth request without one. 0 (the default): only the "
        "requests the caller (the router) chose to trace deep, so every Triton trace is part "
        "of a full chain and untraced requests cost nothing"))
    model_spans: bool = Field(True, description=(
        "PyTriton's stub and proxy spans and the warden.model span (with the GPU readings); "
        "off leaves Triton's own spans only"))
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    synth_cost: dict[str, float] = Field(default_factory=dict)
    summary_latencies: bool = False
    onnx_threads: int = Field(1, ge=1)
    access_token: str | None = None
    gpu: Literal["twin", "cpu"] = Field("twin", description="device under the model code")
    weights_load_s: float = Field(0.0, ge=0, description=(
        "seconds spent 'loading weights' before Triton starts: the synthetic models have none, "
        "while a real LLM's cold start is dominated by it (tens of seconds); scaling "
        "experiments set it so that a cold start costs what it costs in production"))


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent (the fleet) dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the fleet's own cleanup still applies
        pass


# Where PyTriton's stub keeps the OpenTelemetry SDK (the lean patch failed there: see
# serving.pytriton_spans), a span without a parent is a sampled root by default, so for a
# request Triton did not trace the stub would start and export a root trace per request,
# orphaned from any chain. Parent-based "always off" makes it follow Triton's choice. The stub
# is tritonserver's child, tritonserver this process's: they inherit the environment.
SAMPLER_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}


def _make_tracer(config: ReplicaConfig) -> SpanRecorder | None:
    """The replica's recorder for PyTriton's proxy span and the ``warden.model`` spans (the
    lean one: see ``serving.pytriton_spans`` for what the SDK cost here)."""
    if not config.otlp_url or not config.model_spans:
        return None
    return SpanRecorder(config.otlp_url, f"warden-replica-{config.name}")


def _triton_config(config: ReplicaConfig) -> Any:
    from pytriton.triton import TritonConfig

    trace_config = None
    if config.otlp_url:
        trace_config = [
            "mode=opentelemetry",
            f"rate={config.trace_rate}",
            "level=TIMESTAMPS",
            f"opentelemetry,url={config.otlp_url}",
            f"opentelemetry,resource=service.name=triton-{config.name}",
            # Triton's exporter batches for 5 s by default: chains (and detection) would wait.
            "opentelemetry,bsp_schedule_delay=200",
        ]
    metrics_config = ["summary_latencies=true"] if config.summary_latencies else None
    return TritonConfig(
        http_address="127.0.0.1",
        http_port=config.http_port,
        grpc_address="127.0.0.1",
        grpc_port=config.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=config.metrics_port,
        allow_gpu_metrics=False,
        trace_config=trace_config,
        metrics_config=metrics_config,
        exit_timeout_secs=2,
    )


Route = Callable[[dict[str, Any]], dict[str, Any]]


def control_routes(name: str, faults: ModelFaultState, twin: Any | None) -> dict[tuple[str, str], Route]:
    """``(method, path) -> handler(body) -> reply``; a handler raises ``ValueError`` for a 400."""
    routes: dict[tuple[str, str], Route] = {
        ("GET", "/healthz"): lambda _: {"replica": name, "pid": os.getpid()},
        ("GET", "/faults"): lambda _: asdict(faults.faults),
        ("POST", "/faults"): lambda body: asdict(faults.update(body)),
        ("DELETE", "/faults"): lambda _: asdict(faults.clear()),
    }
    if twin is not None:
        from collectors.gpu_record import reading_to_dict

        routes.update({
            ("GET", "/gpu"): lambda _: reading_to_dict(twin.reading()),
            ("GET", "/gpu/faults"): lambda _: twin.fault_state(),
            ("POST", "/gpu/faults"): lambda body: twin.apply_faults(body),
            ("DELETE", "/gpu/faults"): lambda _: twin.clear_faults(),
        })
    return routes


def _control_handler(routes: dict[tuple[str, str], Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("control: " + format, *args)

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            route = routes.get((self.command, self.path))
            if route is None:
                self._reply(404, {"error": f"no route {self.command} {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_CONTROL_BODY:
                    raise ValueError("body too large")
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                self._reply(200, route(body))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                self._reply(400, {"error": str(exc)})

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815

    return Handler


def _model_config(b: BatchingConfig, model_config: Any, dynamic_batcher: Any) -> Any:
    """PyTriton's ModelConfig for ``b``.

    Batching "off" keeps the batch dimension (clients send the same ``[1, n]`` shapes) but caps
    batches at one request and drops the dynamic batcher, so each request executes alone.
    Setting PyTriton's ``batching=False`` instead would remove the batch dimension altogether.
    """
    if not b.enabled:
        return model_config(batching=True, max_batch_size=1, batcher=None)
    return model_config(
        batching=True,
        max_batch_size=b.max_batch_size,
        batcher=dynamic_batcher(
            max_queue_delay_microseconds=b.max_queue_delay_us,
            preferred_batch_size=[p for p in b.preferred_batch_sizes if p <= b.max_batch_size]
            or None,
        ),
    )


def serve(config: ReplicaConfig, device: Device | None = None) -> None:
    """Start Triton with the models bound and block until SIGTERM."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.proxy.telemetry import set_telemetry_tracer
    from pytriton.triton import Triton, TritonSecurityConfig

    faults = ModelFaultState()
    if config.weights_load_s:
        logger.info("replica %s: loading weights (simulated, %.1f s)", config.name,
                    config.weights_load_s)
        time.sleep(config.weights_load_s)
    twin = None
    if device is None and config.gpu == "twin":
        from serving.devices import TwinDevice
        from serving.gpu_twin import GpuTwin

        twin = GpuTwin(f"sim-{config.name}", replica=config.name)
        device = TwinDevice(twin)
    if config.otlp_url:
        for key, value in SAMPLER_ENV.items():
            os.environ.setdefault(key, value)
    tracer = _make_tracer(config)
    if tracer is not None:
        use_recorder_for_proxy(tracer)
        use_lean_stub_spans()
    elif config.otlp_url:
        # Triton traces, the model code does not: PyTriton would otherwise build its own
        # proxy tracer from the trace config; a no-op one keeps the proxy side silent.
        from opentelemetry.trace import NoOpTracer

        set_telemetry_tracer(NoOpTracer())
    specs = build_model_specs(
        config.models,
        replica=config.name,
        model_dir=config.model_dir,
        device=device or CpuDevice(),
        faults=faults,
        tracer=tracer,
        synth_cost=SynthCost(**config.synth_cost),
        onnx_threads=config.onnx_threads,
    )
    control = ThreadingHTTPServer(("127.0.0.1", config.control_port),
                                  _control_handler(control_routes(config.name, faults, twin)))
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()

    b = config.batching
    security = (TritonSecurityConfig(access_token=config.access_token)
                if config.access_token else None)
    triton = Triton(config=_triton_config(config), security_config=security)
    for spec in specs:
        triton.bind(
            model_name=spec.name,
            infer_func=spec.infer_func,
            inputs=[Tensor(name=n, dtype=d, shape=s) for n, d, s in spec.inputs],
            outputs=[Tensor(name=n, dtype=d, shape=s) for n, d, s in spec.outputs],
            config=_model_config(b, ModelConfig, DynamicBatcher),
            strict=False,
            # an empty list (not None, which means "Triton's") keeps the stub from tracing
            **({} if config.model_spans else {"trace_config": []}),
        )

    def on_sigterm(signum: int, frame: Any) -> None:
        logger.info("replica %s: SIGTERM, stopping", config.name)
        threading.Thread(target=triton.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    try:
        triton.serve()
    finally:
        control.shutdown()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ReplicaConfig.model_validate_json(Path(argv[0]).read_text())
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
