"""The models a replica serves, each with a full and a lite variant, as PyTriton callables.

* ``mlp`` / ``mlp_lite``: a real ONNX MLP run by onnxruntime, and its int8 quantisation.
* ``synth`` / ``synth_lite``: a synthetic model whose cost is ``per_batch_ms + per_item_ms *
  batch`` (slept, the way a GPU kernel's time is spent off the CPU), so tests and benchmarks can
  shape saturation exactly; the lite variant costs ``lite_cost_ratio`` of the full one and
  returns its answer rounded to float16.

Each callable takes PyTriton's list of requests (dynamic batching on), runs them as one batch,
wraps the model code in a ``warden.model`` span per request (child of the request's span),
stamped with the device it ran on, and lets the replica's faults act on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serving.faults import ModelFaultState
from serving.onnx_mlp import IN_FEATURES, OUT_CLASSES, build_mlp_files
from serving.spans import SpanRecorder

__all__ = [
    "CpuDevice",
    "Device",
    "ModelSpec",
    "SynthCost",
    "SYNTH_FEATURES",
    "build_model_specs",
    "synth_expected",
]

SYNTH_FEATURES = 4


class Device(Protocol):
    """Where model code runs: the real CPU here, a GPU, or the simulated GPU twin.

    ``executing`` wraps the model's real work so the device can account for busy time (and, for
    the twin, stretch it when the simulated clock drops); ``span_attributes`` describes the
    device at that moment for the model span.
    """

    name: str

    def executing(self, batch_size: int, nbytes: int) -> AbstractContextManager[None]: ...

    def span_attributes(self) -> dict[str, Any]: ...


class CpuDevice:
    """The host CPU: what the model really runs on when no GPU and no twin is configured."""

    name = "cpu"

    @contextmanager
    def executing(self, batch_size: int, nbytes: int) -> Iterator[None]:
        yield

    def span_attributes(self) -> dict[str, Any]:
        return {"warden.device": "cpu", "warden.simulated": False}


@dataclass(frozen=True)
class SynthCost:
    per_batch_ms: float = 4.0
    per_item_ms: float = 0.05
    lite_cost_ratio: float = 0.4


@dataclass
class ModelSpec:
    """Everything PyTriton's ``bind`` needs for one model variant."""

    name: str
    base_model: str
    variant: str
    infer_func: Callable[[list[Any]], list[dict[str, np.ndarray]]]
    inputs: Sequence[tuple[str, np.dtype, tuple[int, ...]]]
    outputs: Sequence[tuple[str, np.dtype, tuple[int, ...]]]
    extras: dict[str, Any] = field(default_factory=dict)


def synth_expected(x: np.ndarray, variant: str) -> np.ndarray:
    """What the synthetic model returns for ``x``: ``2x + 1``, rounded to float16 when lite."""
    y = (2.0 * x.astype(np.float32) + 1.0).astype(np.float32)
    return y.astype(np.float16).astype(np.float32) if variant == "lite" else y


class _Executor:
    """Runs one batched model call under the device, the faults and the model spans."""

    def __init__(
        self,
        base_model: str,
        variant: str,
        replica: str,
        device: Device,
        faults: ModelFaultState,
        tracer: SpanRecorder | None,
    ) -> None:
        self.base_model, self.variant, self.replica = base_model, variant, replica
        self.device, self.faults, self.tracer = device, faults, tracer

    def __call__(
        self, requests: list[Any], input_name: str, compute: Callable[[np.ndarray], np.ndarray],
        output_name: str,
    ) -> list[dict[str, np.ndarray]]:
        arrays = [np.asarray(r[input_name], dtype=np.float32) for r in requests]
        batch = np.concatenate(arrays, axis=0)
        spans = self._start_spans(requests, len(batch))
        try:
            started = time.perf_counter()
            with self.device.executing(len(batch), batch.nbytes):
                out = compute(batch)
            self.faults.after_execution(time.perf_counter() - started)
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(_error_status(str(exc)))
            raise
        finally:
            if spans:
                attrs = self.device.span_attributes()
                for span in spans:
                    span.set_attributes(attrs)
                    span.end()
        bounds = np.cumsum([0] + [len(a) for a in arrays])
        return [{output_name: out[a:b]} for a, b in zip(bounds[:-1], bounds[1:])]

    def _start_spans(self, requests: list[Any], batch_size: int) -> list[Any]:
        if self.tracer is None:
            return []
        attributes = {
            "warden.model": self.base_model,
            "warden.variant": self.variant,
            "warden.replica": self.replica,
            "warden.batch_size": batch_size,
        }
        spans = []
        for request in requests:
            # Only under a traced request: an untraced one (no span from PyTriton, or one that
            # does not record) would only give a non-recording span, at a cost per request.
            parent = getattr(request, "span", None)
            if parent is None:
                continue
            ctx = parent.get_span_context()  # PyTriton's proxy span: a LiteSpan, or the SDK's
            if ctx.trace_flags.sampled:
                spans.append(self.tracer.start_span(
                    "warden.model", parent=(ctx.trace_id, ctx.span_id), attributes=attributes))
        return spans


def _error_status(message: str) -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, message)


def _synth_compute(cost: SynthCost, variant: str) -> Callable[[np.ndarray], np.ndarray]:
    ratio = cost.lite_cost_ratio if variant == "lite" else 1.0

    def compute(batch: np.ndarray) -> np.ndarray:
        time.sleep(ratio * (cost.per_batch_ms + cost.per_item_ms * len(batch)) / 1e3)
        return synth_expected(batch, variant)

    return compute


def _onnx_compute(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def compute(batch: np.ndarray) -> np.ndarray:
        return session.run(["probs"], {"x": batch})[0]

    return compute


def build_model_specs(
    models: Sequence[str],
    *,
    replica: str,
    model_dir: Path,
    device: Device,
    faults: ModelFaultState,
    tracer: SpanRecorder | None,
    synth_cost: SynthCost = SynthCost(),
    onnx_threads: int = 1,
) -> list[ModelSpec]:
    """Both variants of each named model (``mlp``, ``synth``), ready for ``Triton.bind``."""
    specs: list[ModelSpec] = []
    for base in models:
        if base == "synth":
            computes = {v: _synth_compute(synth_cost, v) for v in ("full", "lite")}
            shapes = ((SYNTH_FEATURES,), (SYNTH_FEATURES,), "x", "y")
        elif base == "mlp":
            files = build_mlp_files(model_dir)
            computes = {
                "full": _onnx_compute(files.full, onnx_threads),
                "lite": _onnx_compute(files.lite, onnx_threads),
            }
            shapes = ((IN_FEATURES,), (OUT_CLASSES,), "x", "probs")
        else:
            raise ValueError(f"unknown model {base!r}; known: mlp, synth")
        in_shape, out_shape, in_name, out_name = shapes
        for variant, compute in computes.items():
            executor = _Executor(base, variant, replica, device, faults, tracer)
            specs.append(ModelSpec(
                name=base if variant == "full" else f"{base}_lite",
                base_model=base,
                variant=variant,
                infer_func=_bind(executor, in_name, compute, out_name),
                inputs=[(in_name, np.dtype(np.float32), in_shape)],
                outputs=[(out_name, np.dtype(np.float32), out_shape)],
            ))
    return specs


def _bind(
    executor: _Executor, in_name: str, compute: Callable[[np.ndarray], np.ndarray], out_name: str
) -> Callable[[list[Any]], list[dict[str, np.ndarray]]]:
    def infer(requests: list[Any]) -> list[dict[str, np.ndarray]]:
        return executor(requests, in_name, compute, out_name)

    return infer
