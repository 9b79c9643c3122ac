"""Enrichment: annotations that tell on-call what broke, where, and what Warden did.

Why: an alert that says only "P99 high" sends a human to five dashboards. Warden already knows
the detector's evidence (baseline against observed), the slowest traces of the window, where the
dashboard shows them, and, once a runbook ran, what it did and whether it worked; all of it goes
into the alert's annotations, which every Alertmanager receiver displays. Values are strings and
bounded in size, so a large evidence map cannot bloat a page.

What remediation did is added in the notify pipeline by
:class:`warden.alerting.remediation_notes.RemediationStage`, read from the action audit at
flush time (so the next notification after a runbook ran carries it); :func:`enrich`'s
``actions`` argument serves callers that already hold :class:`ActionRecord` objects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from warden.records import ActionRecord, Alert, Anomaly, freeze_labels

__all__ = ["MAX_ANNOTATION_CHARS", "MAX_TRACE_IDS", "enrich"]

MAX_ANNOTATION_CHARS = 2000
MAX_TRACE_IDS = 5


def _num(x: float) -> str:
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.4g}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ANNOTATION_CHARS else text[: MAX_ANNOTATION_CHARS - 1] + "…"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)


def enrich(alert: Alert, *, anomaly: Anomaly | None = None,
           slow_trace_ids: Sequence[str] = (), dashboard_url: str = "",
           actions: Sequence[ActionRecord] = ()) -> Alert:
    """Return ``alert`` with evidence annotations added (existing annotations win on clashes
    only for keys Warden does not own: ``evidence``, ``slowest_trace_ids``, ``dashboard``,
    ``remediation`` and ``remediation_result`` are Warden's and are overwritten)."""
    ann = dict(alert.annotations)
    if anomaly is not None:
        ann["evidence"] = _clip(
            f"{anomaly.detector} on {anomaly.series}: observed {_num(anomaly.observed)} vs "
            f"baseline {_num(anomaly.baseline)} (score {_num(anomaly.score)})")
        if anomaly.evidence:
            ann["evidence_detail"] = _clip(json.dumps(_jsonable(anomaly.evidence),
                                                      sort_keys=True, separators=(",", ":")))
    ids = [t for t in slow_trace_ids if t][:MAX_TRACE_IDS]
    if ids:
        ann["slowest_trace_ids"] = ",".join(ids)
    if dashboard_url:
        labels = dict(alert.labels)
        q = {k: labels[k] for k in ("model", "replica", "variant") if k in labels}
        q["from"] = str(int(alert.starts_at - 900))
        if alert.ends_at is not None:
            q["to"] = str(int(alert.ends_at + 300))
        ann["dashboard"] = f"{dashboard_url.rstrip('/')}/?{urlencode(q)}"
    if actions:
        ann["remediation"] = _clip("; ".join(
            f"{a.runbook}/{a.step} on {a.target}: {a.status.value}" for a in actions))
        last = actions[-1]
        ann["remediation_result"] = _clip(
            f"{last.status.value}" + (f": {last.result}" if last.result else ""))
    return replace(alert, annotations=freeze_labels(ann))
