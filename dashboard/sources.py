"""Data owned by other parts of Warden, read defensively: each may not exist yet.

The names the dashboard expects are stated here, in one place, so the owners can check them:

* ``action_audit`` (remediation, :data:`remediation.audit.AUDIT_DDL`): one row per phase of an
  action (``before`` applying, ``after`` applied/failed/skipped/rolled_back, ``verify``
  verified/failed, ``refused`` skipped): id, ts, runbook, step, target, params (JSON with
  ``change`` and ``inverse``), idempotency_key, phase, status, evidence (JSON), result, execution.
* ``baselines`` (anomaly), optional: series, labels, ts, lower, median, upper.
* ``alert_outbox`` (alerting, :mod:`warden.alerting.outbox`): one row per notification, its body
  an Alertmanager v4 webhook message.
* chaos journals (chaos): ``<home>/chaos/*.json``, each with title, verdict, started_at, ended_at,
  time_to_detect_s, time_to_recover_s, slo_violation_s and timeline ``[{ts, kind, message}]``.
* router state: ``lab.json``'s ``router_url``, then ``GET /admin/state`` with a short timeout.

Every reader returns a DataFrame (possibly empty) or raises :class:`SourceMissing` with a message
meant for the user; a malformed row or file is skipped and counted, never raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from warden.store import Store

__all__ = [
    "AUDIT_COLUMNS",
    "AUDIT_TABLE",
    "BASELINE_TABLE",
    "JOURNAL_KEYS",
    "Journals",
    "RouterState",
    "SourceMissing",
    "alert_timeline",
    "audit_actions",
    "audit_rows",
    "baseline_band",
    "load_journals",
    "outbox_rows",
    "rolling_band",
    "router_state",
    "silences",
    "table_exists",
]

AUDIT_TABLE = "action_audit"
AUDIT_COLUMNS: tuple[str, ...] = (
    "id", "ts", "runbook", "step", "target", "params", "idempotency_key", "phase", "status",
    "evidence", "result", "execution",
)
#: Newest audit rows read (the audit is history; the page shows the recent part).
MAX_AUDIT_ROWS = 2_000
BASELINE_TABLE = "baselines"
OUTBOX_TABLE = "alert_outbox"
JOURNAL_KEYS: tuple[str, ...] = (
    "title", "verdict", "started_at", "ended_at", "time_to_detect_s", "time_to_recover_s",
    "slo_violation_s",
)
ROUTER_TIMEOUT_S = 0.5
#: Newest notifications read for the alert timeline (older ones are history, not state).
MAX_NOTIFICATIONS = 2_000


class SourceMissing(LookupError):
    """The data a view needs is not there (yet); the message says how to get it."""


def table_exists(store: Store, name: str) -> bool:
    df = store.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return not df.empty


def _json_or_raw(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- remediation audit --------------------------------------------------------------------------

def audit_rows(store: Store, start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """The action audit, one row per phase, newest first; ``params``/``evidence`` decoded.

    Columns are :data:`AUDIT_COLUMNS`; a column the table lacks (an older remediation) is
    shown empty rather than failing. ``change`` is added: the planned change in words
    (``scale synth to 3``), from ``params["change"]``.
    """
    if not table_exists(store, AUDIT_TABLE):
        raise SourceMissing(
            f"No `{AUDIT_TABLE}` table in the store yet: remediation has not run any action.")
    have = set(store.query(f"SELECT * FROM {AUDIT_TABLE} LIMIT 0").columns)
    cols = [c for c in AUDIT_COLUMNS if c in have]
    where = " WHERE ts >= ? AND ts < ?" if start is not None and end is not None else ""
    params = (start, end) if where else ()
    order = "ts DESC" + (", id DESC" if "id" in have else "")
    df = store.query(f"SELECT {', '.join(cols)} FROM {AUDIT_TABLE}{where} ORDER BY {order} "
                     f"LIMIT {MAX_AUDIT_ROWS}", params)
    for c in AUDIT_COLUMNS:
        if c not in df.columns:
            df[c] = None
    for c in ("params", "evidence"):
        df[c] = [_json_or_raw(x) for x in df[c]]
    df["change"] = [_change_text(p) for p in df["params"]]
    return df[[*AUDIT_COLUMNS, "change"]]


def _change_text(params: Any) -> str:
    """``params["change"]`` (a :class:`remediation.changes.Change` as JSON) in a few words."""
    ch = params.get("change") if isinstance(params, dict) else None
    if not isinstance(ch, dict):
        return "" if params is None else str(params)
    args = ch.get("args") if isinstance(ch.get("args"), dict) else {}
    kind, model = ch.get("kind", "?"), ch.get("model", "?")
    if kind == "scale" and "replicas" in args:
        return f"scale {model} to {args['replicas']}"
    if kind == "variant" and "fraction" in args:
        return f"{model} {args.get('variant', 'lite')} {float(args['fraction']):.0%}"
    if kind == "weights" and isinstance(args.get("weights"), dict):
        return f"weights {model} {args['weights']}"
    if kind == "restart" and "replica" in args:
        return f"restart {args['replica']}"
    return f"{kind} {model} {args}"


def audit_actions(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per action (idempotency key) from :func:`audit_rows`: its change and outcome.

    ``outcome``: ``refused`` (a guard said no), ``applying`` (a ``before`` row with no
    ``after``: the engine stopped mid-action; remediation reconciles it on restart), else the
    ``after`` row's status (applied, failed, skipped, rolled_back). ``verified`` is the
    execution's verify status (``verified``/``failed``), if its runbook verified. Newest first.
    """
    cols = ["ts", "execution", "runbook", "step", "target", "change", "outcome", "verified",
            "result", "idempotency_key"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    verify = (rows[rows["phase"] == "verify"].drop_duplicates("execution")
              .set_index("execution")["status"].astype(str))
    acts = rows[rows["phase"] != "verify"].sort_values("ts", kind="stable")
    # vectorised: a per-key Python loop cost 0.4 s for 144 actions
    out = acts.groupby("idempotency_key", sort=False)[
        ["ts", "execution", "runbook", "step", "target", "change"]].first()
    last = acts.groupby("idempotency_key", sort=False)[["status", "result"]].last()
    out["outcome"], out["result"] = last["status"].astype(str), last["result"]
    for phase, outcome in (("before", "applying"), ("refused", "refused"), ("after", None)):
        one = acts[acts["phase"] == phase].drop_duplicates("idempotency_key", keep="last")
        one = one.set_index("idempotency_key")
        out.loc[one.index, "outcome"] = one["status"].astype(str) if outcome is None \
            else outcome
        out.loc[one.index, "result"] = one["result"] if phase != "before" \
            else "no outcome recorded yet"
    out["verified"] = out["execution"].astype(str).map(verify).fillna("")
    out["result"] = out["result"].fillna("")
    out = out.reset_index()[cols]
    return out.sort_values("ts", ascending=False, ignore_index=True)


# -- alert outbox and alert timeline --------------------------------------------------------------

def outbox_rows(store: Store) -> pd.DataFrame:
    """The notification outbox (without bodies), newest first."""
    if not table_exists(store, OUTBOX_TABLE):
        raise SourceMissing("No `alert_outbox` table in the store yet: no alert has been "
                            "notified (alerting creates it on its first notification).")
    return store.query(
        "SELECT id, created_at, target, group_key, status, state, attempts, last_status, "
        "last_error, next_attempt_at, delivered_at FROM alert_outbox ORDER BY created_at DESC, "
        "id DESC")


def alert_timeline(store: Store, now: float) -> pd.DataFrame:
    """One row per alert (by fingerprint) from the outbox bodies: name, start, end, status.

    Why from the outbox: it holds every notification Warden sent, each with the full alert list
    of its group; the last message about an alert tells its latest state. An alert still firing
    ends at ``now`` on the timeline.
    """
    if not table_exists(store, OUTBOX_TABLE):
        raise SourceMissing("No alerts yet: the `alert_outbox` table does not exist.")
    from warden.alerting.payload import parse_go_time  # lazy: alerting's pydantic models

    raw = store.query(
        "SELECT created_at, body FROM (SELECT created_at, body, id FROM alert_outbox "
        f"ORDER BY created_at DESC, id DESC LIMIT {MAX_NOTIFICATIONS}) ORDER BY created_at, id")
    alerts: dict[str, dict[str, Any]] = {}
    for created_at, body in raw.itertuples(index=False):
        try:
            msg = json.loads(body)
            items = msg["alerts"]
        except (ValueError, KeyError, TypeError):
            continue
        for a in items if isinstance(items, list) else ():
            if not isinstance(a, dict) or not isinstance(a.get("labels"), dict):
                continue
            labels = a["labels"]
            fp = a.get("fingerprint") or json.dumps(labels, sort_keys=True)
            starts = parse_go_time(str(a.get("startsAt", ""))) or created_at
            ends = parse_go_time(str(a.get("endsAt", "")))
            status = a.get("status", "firing")
            alerts[fp] = {
                "alertname": labels.get("alertname", ""), "severity": labels.get("severity", ""),
                "status": status, "starts_at": starts,
                "ends_at": ends if status == "resolved" and ends else max(now, starts),
                "summary": (a.get("annotations") or {}).get("summary", ""),
                "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                                    if k != "alertname"),
                "fingerprint": fp,
            }
    cols = ["alertname", "severity", "status", "starts_at", "ends_at", "summary", "labels",
            "fingerprint"]
    return pd.DataFrame(list(alerts.values()), columns=cols)


def _matchers_text(raw: object) -> str:
    """Alerting's stored matchers (a JSON list of ``{name, op, value}``) as ``name="value"``."""
    items = _json_or_raw(raw)
    if not isinstance(items, list):
        return str(items)
    return ", ".join(f'{m.get("name", "?")}{m.get("op", "=")}"{m.get("value", "")}"'
                     if isinstance(m, dict) else str(m) for m in items)


def silences(store: Store, now: float) -> pd.DataFrame:
    """Silences (alerting's ``alert_silences``) not yet expired at ``now``, newest first."""
    if not table_exists(store, "alert_silences"):
        raise SourceMissing("No silences: the `alert_silences` table does not exist yet "
                            "(`warden alerts silence add` creates it).")
    df = store.query("SELECT id, matchers, starts_at, ends_at, created_by, comment FROM "
                     "alert_silences WHERE ends_at > ? ORDER BY starts_at DESC", (now,))
    df["matchers"] = [_matchers_text(m) for m in df["matchers"]]
    return df


# -- baselines ----------------------------------------------------------------------------------

def baseline_band(store: Store, start: float, end: float) -> pd.DataFrame:
    """Stored baselines (``ts``, ``series``, ``labels``, ``lower``, ``median``, ``upper``).

    Raises :class:`SourceMissing` when the anomaly part has not written a ``baselines`` table.
    """
    if not table_exists(store, BASELINE_TABLE):
        raise SourceMissing("no baselines table")
    return store.query(
        "SELECT ts, series, labels, lower, median, upper FROM baselines "
        "WHERE ts >= ? AND ts < ? ORDER BY ts", (start, end))


def rolling_band(values: pd.Series, window: int = 30, k: float = 3.0,
                 floor: float = 0.05) -> pd.DataFrame:
    """A baseline band learned from history: rolling median +- k * 1.4826 * MAD.

    Shifted by one point so each window's band comes only from the windows before it, as a
    streaming detector would have learned it. Columns ``lower``, ``median``, ``upper``.
    """
    hist = values.astype(float).shift(1)
    minp = max(3, window // 3)
    roll = hist.rolling(window, min_periods=minp)
    med = roll.median()
    # MAD of the same trailing window about its own median (a few hundred windows at most)
    mad = roll.apply(lambda a: np.nanmedian(np.abs(a - np.nanmedian(a))), raw=True) * 1.4826
    # A perfectly steady history has MAD 0; a band of zero width would call every wobble
    # anomalous, so the half-width is at least ``floor`` of the median.
    half = np.maximum(k * mad, floor * med)
    return pd.DataFrame({"median": med, "lower": (med - half).clip(lower=0.0),
                         "upper": med + half}, index=values.index)


# -- chaos journals -----------------------------------------------------------------------------

@dataclass
class Journals:
    """Chaos experiments (one row each), their timeline events, and the files skipped."""

    experiments: pd.DataFrame
    events: pd.DataFrame
    skipped: list[str] = field(default_factory=list)


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f if np.isfinite(f) else float("nan")


def load_journals(directory: Path) -> Journals:
    """Read every ``*.json`` journal in ``directory``; unreadable ones are listed in ``skipped``."""
    if not directory.is_dir():
        raise SourceMissing(f"No chaos journals: {directory} does not exist. Run an experiment "
                            "(`warden chaos run ...`) to create one.")
    exps, events, skipped = [], [], []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
        except (OSError, ValueError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        row = {k: data.get(k) for k in JOURNAL_KEYS}
        for k in JOURNAL_KEYS[2:]:
            row[k] = _num(row[k])
        row["title"] = str(row["title"] or path.stem)
        row["verdict"] = str(row["verdict"] or "unknown")
        row["journal"] = path.name
        exps.append(row)
        for ev in data.get("timeline") or []:
            if isinstance(ev, dict) and np.isfinite(_num(ev.get("ts"))):
                events.append({"journal": path.name, "title": row["title"],
                               "ts": _num(ev["ts"]), "kind": str(ev.get("kind", "")),
                               "message": str(ev.get("message", ""))})
    exp_df = pd.DataFrame(exps, columns=[*JOURNAL_KEYS, "journal"])
    ev_df = pd.DataFrame(events, columns=["journal", "title", "ts", "kind", "message"])
    return Journals(exp_df.sort_values("started_at", na_position="last", ignore_index=True),
                    ev_df.sort_values(["journal", "ts"], ignore_index=True), skipped)


# -- router state -------------------------------------------------------------------------------

@dataclass
class RouterState:
    """The router's weights per replica and variant split per model, from its admin API."""

    url: str
    policy: str
    replicas: pd.DataFrame
    variant_split: pd.DataFrame


def router_state(lab_state_path: Path, *, timeout_s: float = ROUTER_TIMEOUT_S,
                 client: httpx.Client | None = None) -> RouterState:
    """Ask the lab's router for its state; :class:`SourceMissing` when no lab or no answer."""
    try:
        url = json.loads(lab_state_path.read_text())["router_url"]
    except FileNotFoundError:
        raise SourceMissing(f"No lab running ({lab_state_path} not found): start one with "
                            "`warden up` to see router weights and the variant split.") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SourceMissing(f"Cannot read {lab_state_path}: {exc}") from None
    try:
        if client is None:
            resp = httpx.get(f"{url.rstrip('/')}/admin/state", timeout=timeout_s)
        else:
            resp = client.get(f"{url.rstrip('/')}/admin/state", timeout=timeout_s)
        resp.raise_for_status()
        state = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SourceMissing(f"Router at {url} did not answer: {exc}") from None
    reps = pd.DataFrame(state.get("replicas") or [],
                        columns=["name", "url", "weight", "healthy", "ejected", "outstanding",
                                 "ewma", "requests", "errors"])
    split = pd.DataFrame(sorted((state.get("variant_split") or {}).items()),
                         columns=["model", "lite_fraction"])
    return RouterState(url=url, policy=str(state.get("policy", "")), replicas=reps,
                       variant_split=split)
