"""Store ingest rate: samples per second into SQLite (WAL) on one core, batched.

Writes ``--samples`` samples spread over ``--series`` series (10 s of a fleet's worth of points
per batch, in time order, as the engine would), through :class:`warden.store_writer.StoreWriter`
with several batch sizes, then times a few readers on the result. Pins itself to one CPU so the
figure is per core. Target (issue 3): 100,000 samples/s.

    python benchmarks/store_ingest.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warden.records import Sample, freeze_labels  # noqa: E402
from warden.store import Store  # noqa: E402
from warden.store_writer import StoreWriter  # noqa: E402


def make_samples(n: int, n_series: int, t0: float = 1_800_000_000.0) -> list[Sample]:
    labels = [freeze_labels({"model": f"m{i % 4}", "variant": "full", "replica": f"r{i % 8}",
                             "stage": f"s{i // 32}"}) for i in range(n_series)]
    out = []
    for i in range(n):
        k = i % n_series
        out.append(Sample("triton_queue_duration_seconds", labels[k], t0 + i // n_series,
                          (i % 97) * 1e-3))
    return out


def run(samples: list[Sample], batch: int, path: Path) -> tuple[float, float]:
    store = Store(path)
    writer = StoreWriter(store, max_records=batch, max_delay_s=3600.0)
    t = time.perf_counter()
    for i in range(0, len(samples), batch):
        writer.extend(samples[i:i + batch])
    writer.flush()
    dt = time.perf_counter() - t
    size = store.size_bytes()
    store.close()
    return len(samples) / dt, size / len(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="200k samples instead of 1M")
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--series", type=int, default=1_000)
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = ap.parse_args()
    n = 200_000 if args.quick else args.samples
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    samples = make_samples(n, args.series)
    print(f"store ingest: {n:,} samples over {args.series:,} series, one core, WAL, "
          f"synchronous=NORMAL")
    print(f"| {'batch':>7} | {'samples/s':>11} | {'bytes/sample':>12} |")
    print(f"|{'-' * 9}|{'-' * 13}|{'-' * 14}|")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1_000, 5_000, 20_000):
            rate, per = run(samples, batch, Path(tmp) / f"b{batch}.db")
            print(f"| {batch:>7,} | {rate:>11,.0f} | {per:>12.1f} |")
        store = Store(Path(tmp) / "b5000.db", readonly=True)
        t = time.perf_counter()
        df = store.series("triton_queue_duration_seconds", {"replica": "r3"})
        t_series = time.perf_counter() - t
        t = time.perf_counter()
        q = store.quantiles("triton_queue_duration_seconds", window_s=60.0, by=("replica",))
        t_q = time.perf_counter() - t
        store.close()
    print()
    print(f"| reader | rows | seconds |\n|---|---|---|\n"
          f"| series(replica=r3) | {len(df):,} | {t_series:.3f} |\n"
          f"| quantiles(60 s, by replica) | {len(q):,} | {t_q:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
