"""A real model for the lab: an MLP built in code as an ONNX graph, and its int8 lite variant.

Why build it in code: the lab must run with no network, so no weights can be downloaded. A
seeded MLP is a real ONNX model run by onnxruntime, which is what matters for serving (real
matrix multiplies, real batch-size scaling); its lite variant is the same graph after
onnxruntime's dynamic int8 quantisation, the usual first step when degrading a model.

Shapes: input ``x`` is ``[batch, IN_FEATURES]`` float32; output ``probs`` is
``[batch, OUT_CLASSES]`` float32 softmax probabilities.
"""

from __future__ import annotations

import fcntl
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IN_FEATURES",
    "OUT_CLASSES",
    "MlpFiles",
    "build_mlp_files",
    "mlp_weights",
    "reference_forward",
]

IN_FEATURES = 256
HIDDEN = 1024
OUT_CLASSES = 16
SEED = 20261122


@dataclass(frozen=True)
class MlpFiles:
    full: Path
    lite: Path


def mlp_weights(seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weight, bias) pairs of the three dense layers, He-initialised from ``seed``."""
    rng = np.random.default_rng(seed)
    dims = [IN_FEATURES, HIDDEN, HIDDEN, OUT_CLASSES]
    layers = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        w = rng.normal(0.0, np.sqrt(2.0 / d_in), size=(d_in, d_out)).astype(np.float32)
        b = rng.normal(0.0, 0.01, size=(d_out,)).astype(np.float32)
        layers.append((w, b))
    return layers


def reference_forward(x: np.ndarray, seed: int = SEED) -> np.ndarray:
    """The full model's output computed in numpy: what a correct server must return."""
    h = x.astype(np.float32)
    layers = mlp_weights(seed)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _build_graph(seed: int):  # -> onnx.ModelProto
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    prev = "x"
    layers = mlp_weights(seed)
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"]))
        prev = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"a{i}"]))
            prev = f"a{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes,
        "warden_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN_FEATURES])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", OUT_CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_mlp_files(directory: Path, seed: int = SEED) -> MlpFiles:
    """Write ``mlp.onnx`` and its dynamically quantised ``mlp_lite.onnx`` once; reuse after.

    The file names carry a hash of the seed and layer sizes, so a change of either rebuilds
    instead of silently serving stale weights. Replicas start in parallel and share the
    directory, and the quantiser writes a scratch ``*-inferred.onnx`` beside its input, so the
    build holds an exclusive lock: without it one replica deleted the other's scratch file
    mid-read and failed to start.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(f"{seed}-{IN_FEATURES}-{HIDDEN}-{OUT_CLASSES}".encode()).hexdigest()[:10]
    files = MlpFiles(directory / f"mlp-{tag}.onnx", directory / f"mlp_lite-{tag}.onnx")
    if files.full.exists() and files.lite.exists():
        return files
    with open(directory / ".mlp-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_missing(files, seed)
    return files


def _build_missing(files: MlpFiles, seed: int) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not files.full.exists():
        import onnx

        tmp = files.full.with_suffix(".tmp")
        onnx.save(_build_graph(seed), str(tmp))
        tmp.replace(files.full)
    if not files.lite.exists():
        tmp = files.lite.with_suffix(".tmp.onnx")
        quantize_dynamic(str(files.full), str(tmp), weight_type=QuantType.QInt8)
        tmp.replace(files.lite)
