"""No data, no tables, no file: every page says what to do, and never shows a traceback."""

from __future__ import annotations

import sqlite3

import pytest
from dashboard_helpers import texts

from warden.records import Sample, freeze_labels
from warden.store import Store

PAGES = ("fleet.py", "latency.py", "traces.py", "gpus.py", "alerts.py", "chaos.py")


def _no_errors(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not [w for w in texts(at, "warning") if "could not be shown" in w]
    assert not at.error


@pytest.mark.parametrize("name", PAGES)
def test_missing_store_file(page, tmp_path, name):
    at = page(name, tmp_path / "nope" / "warden.db")
    _no_errors(at)
    assert any("No Warden store to read yet" in t and "warden up" in t for t in texts(at, "info"))


@pytest.mark.parametrize("name", PAGES)
def test_empty_store(page, tmp_path, name):
    Store(tmp_path / "warden.db").close()  # schema, no rows
    at = page(name, tmp_path / "warden.db")
    _no_errors(at)
    assert any("The store is empty" in t for t in texts(at, "info"))


@pytest.mark.parametrize("name", PAGES)
def test_database_without_warden_tables(page, tmp_path, name):
    db = tmp_path / "warden.db"
    sqlite3.connect(db).execute("CREATE TABLE unrelated (x)").connection.close()
    at = page(name, db)
    _no_errors(at)
    assert texts(at, "info")


@pytest.mark.parametrize("name", PAGES)
def test_samples_only_other_parts_absent(page, tmp_path, name):
    """Only metrics so far: no traces, GPU readings, outbox, audit, journals or lab."""
    store = Store(tmp_path / "warden.db")
    store.write_samples(Sample("triton_up", freeze_labels({"replica": "r0"}), 1e9 + i, 1.0)
                        for i in range(30))
    store.close()
    at = page(name, tmp_path / "warden.db")
    _no_errors(at)
    infos = " ".join(texts(at, "info"))
    expected = {
        "fleet.py": "No traced requests", "latency.py": "No traced requests",
        "traces.py": "No request chains", "gpus.py": "No GPU readings",
        "alerts.py": "`action_audit`", "chaos.py": "No chaos journals",
    }[name]
    assert expected in infos
    if name == "alerts.py":
        assert "`alert_outbox`" in infos
    if name == "fleet.py":
        assert "No lab running" in infos
