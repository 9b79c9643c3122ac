"""Accuracy delta and speed-up of the MLP's int8 lite variant against its float32 full variant.

Runs both ONNX files with onnxruntime on one thread (as a replica does), on the same seeded
inputs, at several batch sizes, interleaving the two variants and taking medians over repeats so
that machine noise hits both alike. Prints two tables.

    python benchmarks/quantisation.py [--repeats 7] [--items 2048]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from serving.onnx_mlp import IN_FEATURES, build_mlp_files, reference_forward


def accuracy_delta(full: np.ndarray, lite: np.ndarray) -> dict[str, float]:
    """How far the lite variant's answers are from the full one's."""
    return {
        "top1_agreement": float(np.mean(full.argmax(1) == lite.argmax(1))),
        "max_abs_prob_diff": float(np.max(np.abs(full - lite))),
        "mean_abs_prob_diff": float(np.mean(np.abs(full - lite))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--items", type=int, default=2048)
    args = parser.parse_args()
    import onnxruntime as ort

    files = build_mlp_files(Path(tempfile.gettempdir()) / "warden-models")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sessions = {v: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                for v, p in (("full", files.full), ("lite", files.lite))}
    x = np.random.default_rng(7).standard_normal((args.items, IN_FEATURES), dtype=np.float32)
    out = {v: s.run(["probs"], {"x": x})[0] for v, s in sessions.items()}
    ref = reference_forward(x)
    print("accuracy (same inputs, n=%d)" % args.items)
    print(f"{'variant':<8} {'top1 vs numpy ref':>18} {'max |dp|':>10} {'mean |dp|':>10}")
    for v in ("full", "lite"):
        d = accuracy_delta(ref, out[v])
        print(f"{v:<8} {d['top1_agreement']:>18.4f} {d['max_abs_prob_diff']:>10.4f} "
              f"{d['mean_abs_prob_diff']:>10.5f}")
    print()
    print(f"{'batch':>5} {'full ms':>9} {'lite ms':>9} {'speed-up':>9}")
    for batch in (1, 8, 32, 64):
        xb = x[:batch]
        times: dict[str, list[float]] = {"full": [], "lite": []}
        for _ in range(args.repeats):
            for v, s in sessions.items():
                t0 = time.perf_counter()
                for _ in range(20):
                    s.run(["probs"], {"x": xb})
                times[v].append((time.perf_counter() - t0) / 20 * 1e3)
        f, l = statistics.median(times["full"]), statistics.median(times["lite"])
        print(f"{batch:>5} {f:>9.3f} {l:>9.3f} {f / l:>8.2f}x")


if __name__ == "__main__":
    main()
