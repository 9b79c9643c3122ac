"""Finders over a finished AppTest run: dataframes by their columns, metrics by label."""

from __future__ import annotations

import pandas as pd

__all__ = ["frame", "metrics", "texts", "vega"]


def frame(at: object, *cols: str) -> pd.DataFrame:
    """The first dataframe shown whose columns include ``cols``."""
    for d in at.dataframe:  # type: ignore[attr-defined]
        if set(cols) <= set(d.value.columns):
            return d.value
    raise AssertionError(f"no dataframe with columns {cols}")


def metrics(at: object) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}  # type: ignore[attr-defined]


def texts(at: object, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def vega(at: object, index: int = 0) -> tuple[dict, pd.DataFrame]:
    """The spec and the data of the ``index``-th Vega-Lite chart."""
    import json

    import pyarrow as pa

    el = at.get("vega_lite_chart")[index]  # type: ignore[attr-defined]
    data = pa.ipc.open_stream(el.proto.data.data).read_pandas()
    return json.loads(el.proto.spec), data
