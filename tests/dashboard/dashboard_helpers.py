"""Finders over a finished AppTest run: dataframes by their columns, metrics by label."""

from __future__ import annotations

import pandas as pd

__all__ = ["figure", "frame", "metrics", "texts", "vega"]


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


def _decode(v: object) -> list:
    """Plotly 6+ ships numeric arrays as ``{"dtype", "bdata"}`` (base64): decode them."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)  # type: ignore[call-overload]


def figure(at: object, index: int = 0) -> list[dict]:
    """The traces of the ``index``-th plotly chart, typed arrays decoded to lists."""
    import json

    spec = json.loads(at.get("plotly_chart")[index].proto.spec)  # type: ignore[attr-defined]
    out = []
    for t in spec["data"]:
        d = {k: t[k] for k in ("name", "x", "y", "base") if k in t}
        for k in ("x", "y", "base"):
            if d.get(k) is not None:
                d[k] = _decode(d[k])
        out.append(d)
    return out


def vega(at: object, index: int = 0) -> tuple[dict, pd.DataFrame]:
    """The spec and the data of the ``index``-th Vega-Lite chart."""
    import json

    import pyarrow as pa

    el = at.get("vega_lite_chart")[index]  # type: ignore[attr-defined]
    data = pa.ipc.open_stream(el.proto.data.data).read_pandas()
    return json.loads(el.proto.spec), data
