"""Unit tests of the model code and faults, without Triton."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from serving.faults import InjectedModelError, ModelFaultState
from serving.models import CpuDevice, build_model_specs, synth_expected
from serving.onnx_mlp import IN_FEATURES, build_mlp_files, reference_forward


class _Req(dict):
    span = None


def test_synth_lite_rounds_to_float16_and_full_is_exact() -> None:
    x = np.array([[0.1, 1.0, -3.3, 1000.01]], dtype=np.float32)
    assert np.array_equal(synth_expected(x, "full"), 2 * x + 1)
    lite = synth_expected(x, "lite")
    assert not np.array_equal(lite, 2 * x + 1)
    assert np.allclose(lite, 2 * x + 1, rtol=1e-3)


def test_batched_callable_splits_outputs_per_request(tmp_path: Path) -> None:
    specs = {s.name: s for s in build_model_specs(
        ["synth"], replica="r0", model_dir=tmp_path, device=CpuDevice(),
        faults=ModelFaultState(), tracer=None)}
    assert set(specs) == {"synth", "synth_lite"}
    reqs = [_Req(x=np.full((n, 4), n, dtype=np.float32)) for n in (1, 3, 2)]
    out = specs["synth"].infer_func(reqs)
    assert [o["y"].shape[0] for o in out] == [1, 3, 2]
    for req, o in zip(reqs, out):
        assert np.array_equal(o["y"], 2 * req["x"] + 1)


def test_onnx_full_matches_numpy_and_lite_within_bound(tmp_path: Path) -> None:
    files = build_mlp_files(tmp_path)
    import onnxruntime as ort

    x = np.random.default_rng(3).standard_normal((512, IN_FEATURES), dtype=np.float32)
    full = ort.InferenceSession(str(files.full)).run(["probs"], {"x": x})[0]
    lite = ort.InferenceSession(str(files.lite)).run(["probs"], {"x": x})[0]
    ref = reference_forward(x)
    assert np.allclose(full, ref, atol=1e-4)
    assert np.mean(lite.argmax(1) == ref.argmax(1)) >= 0.95
    assert np.max(np.abs(lite - ref)) <= 0.1
    assert files.lite.stat().st_size < files.full.stat().st_size / 3


def test_latency_factor_stretches_execution() -> None:
    faults = ModelFaultState()
    faults.update({"latency_factor": 5})
    t0 = time.perf_counter()
    faults.after_execution(0.01)
    assert time.perf_counter() - t0 >= 0.039


def test_error_rate_one_always_raises_and_clear_restores() -> None:
    faults = ModelFaultState()
    faults.update({"error_rate": 1.0})
    with pytest.raises(InjectedModelError):
        faults.after_execution(0.0)
    faults.clear()
    faults.after_execution(0.0)


@pytest.mark.parametrize("bad", [
    {"latency_factor": 0.5}, {"error_rate": 2}, {"jitter_ms": -1}, {"nope": 1},
    {"latency_factor": "fast"}, {"error_rate": math.nan},
])
def test_bad_faults_are_rejected_and_state_unchanged(bad: dict) -> None:
    faults = ModelFaultState()
    faults.update({"extra_latency_ms": 3})
    with pytest.raises(ValueError):
        faults.update(bad)
    assert faults.faults.extra_latency_ms == 3
