"""Fixtures for the dashboard tests: a seeded store and AppTest runs of each page."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_seed import Seeded, seed  # noqa: E402

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
APP = VIEWS.parent / "app.py"
PAGES = ("fleet.py", "latency.py", "traces.py", "gpus.py", "alerts.py", "chaos.py")


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    home = tmp_path_factory.mktemp("warden_home")
    return seed(home / "warden.db", home)


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Run one page with AppTest over a store (and home); returns the finished AppTest."""
    from streamlit.testing.v1 import AppTest

    def run(name: str, db: Path, home: Path | None = None):  # type: ignore[no-untyped-def]
        monkeypatch.setenv("WARDEN_DB", str(db))
        if home is not None:
            monkeypatch.setenv("WARDEN_DASHBOARD_HOME", str(home))
        else:
            monkeypatch.delenv("WARDEN_DASHBOARD_HOME", raising=False)
        at = AppTest.from_file(str(VIEWS / name if name != "app.py" else APP),
                               default_timeout=60)
        at.run()
        return at

    return run
