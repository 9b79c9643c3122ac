"""Warden's dashboard: ``streamlit run dashboard/app.py -- --db PATH`` (or ``warden dashboard``).

A multipage app (``st.navigation``) over the store, opened read-only. Each page is a script in
``dashboard/views/`` so it can also be run, and tested, on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
PAGES: tuple[tuple[str, str, str], ...] = (
    ("fleet.py", "Fleet", ":material/hub:"),
    ("latency.py", "Latency", ":material/timeline:"),
    ("traces.py", "Traces", ":material/account_tree:"),
    ("gpus.py", "GPUs", ":material/memory:"),
    ("alerts.py", "Alerts & remediation", ":material/notifications:"),
    ("chaos.py", "Chaos", ":material/science:"),
)


def main() -> None:
    st.set_page_config(page_title="Warden", page_icon=":material/shield:", layout="wide")
    pages = [st.Page(VIEWS / f, title=t, icon=i, default=(n == 0))
             for n, (f, t, i) in enumerate(PAGES)]
    st.navigation(pages).run()


main()
