"""Reading a NAB-layout corpus, streaming a detector over it and writing NAB result files.

Layout (NAB's): ``DATA/CATEGORY/NAME.csv`` with ``timestamp,value`` columns and a windows JSON
mapping ``CATEGORY/NAME.csv`` to ``[[start, end], ...]``. Results go to
``OUT/CATEGORY/warden_NAME.csv`` with ``timestamp,value,anomaly_score``, NAB's result shape with
``warden`` as the detector name.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from anomaly._base import StreamingDetector

__all__ = ["NabFile", "load_corpus", "result_path", "run_detector", "write_result"]


@dataclass(frozen=True)
class NabFile:
    """One data file: ``timestamps`` shape ``(n,)`` datetime64[ns], ``values`` shape ``(n,)``."""

    name: str  # CATEGORY/NAME.csv
    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[str, str], ...]

    @property
    def seconds(self) -> np.ndarray:
        """Timestamps as float seconds since the epoch, shape ``(n,)``."""
        return self.timestamps.astype("datetime64[ns]").astype(np.int64) / 1e9


def load_corpus(data_dir: str | Path, windows_file: str | Path) -> list[NabFile]:
    """Load every ``CATEGORY/NAME.csv`` under ``data_dir`` listed in the windows file.

    Raises ``ValueError`` naming a file that is listed but missing or malformed.
    """
    data_dir = Path(data_dir)
    with open(windows_file, encoding="utf-8") as fh:
        windows = json.load(fh)
    if not isinstance(windows, dict):
        raise ValueError(f"{windows_file}: expected an object of CATEGORY/NAME.csv -> windows")
    files: list[NabFile] = []
    for name in sorted(windows):
        path = data_dir / name
        if not path.is_file():
            raise ValueError(f"{name}: listed in {windows_file} but not found under {data_dir}")
        df = pd.read_csv(path)
        if "timestamp" not in df.columns or "value" not in df.columns:
            raise ValueError(f"{name}: expected columns timestamp,value, got {list(df.columns)}")
        ts = pd.to_datetime(df["timestamp"]).to_numpy(dtype="datetime64[ns]")
        wins = tuple((str(a), str(b)) for a, b in windows[name])
        files.append(NabFile(name, ts, df["value"].to_numpy(dtype=float), wins))
    return files


def run_detector(
    make: Callable[[], StreamingDetector],
    files: Iterable[NabFile],
    *,
    progress: TextIO | None = sys.stderr,
    label: str = "",
) -> dict[str, np.ndarray]:
    """Stream each file through a fresh, unfitted detector (NAB: online, fixed hyper-parameters)."""
    files = list(files)
    out: dict[str, np.ndarray] = {}
    for k, f in enumerate(files, 1):
        det = make().fit(None)
        out[f.name] = det.score_series(f.seconds, f.values)
        if progress is not None:
            print(f"\r[{label}] {k}/{len(files)} {f.name:<60}", end="", file=progress, flush=True)
    if progress is not None:
        print("", file=progress, flush=True)
    return out


def result_path(out_dir: str | Path, file_name: str) -> Path:
    """``OUT/CATEGORY/warden_NAME.csv`` for data file ``CATEGORY/NAME.csv``."""
    category, base = file_name.split("/", 1)
    return Path(out_dir) / category / f"warden_{base}"


def write_result(out_dir: str | Path, f: NabFile, scores: np.ndarray) -> Path:
    """Write ``timestamp,value,anomaly_score`` for one file and return its path."""
    path = result_path(out_dir, f.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(f.timestamps).strftime("%Y-%m-%d %H:%M:%S"),
            "value": f.values,
            "anomaly_score": scores,
        }
    )
    df.to_csv(path, index=False)
    return path
