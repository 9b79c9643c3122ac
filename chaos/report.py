"""Read journals back: a table for the terminal and a timeline plot (PNG, matplotlib).

The table is what ``benchmarks/`` and ``warden chaos report`` print: experiment, verdict, time
to detect, time to recover, SLO-violation seconds. The plot shows the SLI's P99 per window
against its threshold, violating windows shaded, and vertical marks for the fault, the first
alert, the first action, the revert and the recovery, so a reader sees the loop at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from chaos.journal import Journal

__all__ = ["format_table", "format_timeline", "plot_timeline"]

_MARKS = {"fault_injected": ("tab:red", "fault"), "first_alert": ("tab:orange", "alert"),
          "first_action": ("tab:blue", "action"), "fault_reverted": ("tab:gray", "revert"),
          "slo_recovered": ("tab:green", "recovered")}


def _s(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def format_table(journals: Sequence[Journal], extra: Sequence[str] | None = None) -> str:
    """A fixed-width table; ``extra`` adds one labelled column (e.g. "remediation off")."""
    head = ["experiment", "verdict", "detect s", "recover s", "SLO viol s"]
    rows = [[j.title[:58], j.verdict, _s(j.time_to_detect_s), _s(j.time_to_recover_s),
             _s(j.slo_violation_s)] for j in journals]
    if extra is not None:
        head.insert(0, "run")
        rows = [[e, *r] for e, r in zip(extra, rows, strict=True)]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]

    def line(r: Sequence[object]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def format_timeline(j: Journal) -> str:
    out = [f"{j.title} [{j.verdict}]"]
    out += [f"  +{e.rel_s:7.2f} s  {e.kind:<18} {e.detail[:100]}" for e in j.timeline]
    out += [f"  {'ok ' if e.ok else 'FAIL'} {e.name}: {e.detail}" for e in j.expectations]
    out += [f"  note: {n}" for n in j.notes]
    return "\n".join(out)


def plot_timeline(j: Journal, out: Path) -> Path:
    """Write the journal's timeline as a PNG; works without a display (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = j.started_at
    fig, ax = plt.subplots(figsize=(10, 4))
    if j.sli:
        xs = [w.end - t0 for w in j.sli]
        finite = [w.p99_ms for w in j.sli if math.isfinite(w.p99_ms)]
        cap = max(finite or [1.0]) * 1.2
        ys = [w.p99_ms if math.isfinite(w.p99_ms) else cap for w in j.sli]
        ax.plot(xs, ys, marker=".", label="SLI P99 (ms); no answer drawn at top")
        for w in j.sli:
            if w.violating:
                ax.axvspan(w.start - t0, w.end - t0, color="tab:red", alpha=0.12, lw=0)
    if j.sli_threshold_ms:
        ax.axhline(j.sli_threshold_ms, color="k", ls="--", lw=1, label="SLO threshold")
    seen: set[str] = set()
    for e in j.timeline:
        if e.kind in _MARKS:
            color, label = _MARKS[e.kind]
            ax.axvline(e.rel_s, color=color, lw=1.5,
                       label=None if label in seen else label)
            seen.add(label)
    ax.set_xlabel("seconds since the experiment started")
    ax.set_ylabel("P99 latency (ms)")
    ax.set_title(f"{j.title[:80]}\n{j.verdict}; detect {_s(j.time_to_detect_s)} s, recover "
                 f"{_s(j.time_to_recover_s)} s, SLO violation {_s(j.slo_violation_s)} s",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
