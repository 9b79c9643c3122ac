"""The pytest plugin as a user meets it: a red test names the journal and the reason.

Runs pytest in a subprocess on a small suite whose target is a fleet-less ``UrlTarget``
(the experiments act on files), so this checks the plugin, not the lab.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]

CONFTEST = textwrap.dedent('''
    import pytest
    from chaos.target import UrlTarget

    @pytest.fixture(scope="session")
    def chaos_target():
        return UrlTarget()
''')

TESTS = textwrap.dedent('''
    import pytest
    from chaos.experiment import parse_experiment

    def exp(tmp_path, **over):
        flag = tmp_path / "flag"
        data = {"title": "plugin file fault",
                "steady_state_hypothesis": {"probes": [
                    {"provider": "chaos_fixture_probes:file_absent",
                     "arguments": {"path": str(flag)}, "tolerance": True}]},
                "method": [{"type": "fault", "provider": "chaos_fixture_probes:FileFault",
                            "arguments": {"path": str(flag)}}],
                "watch": {"duration_s": 0.1, "poll_s": 0.05}}
        data.update(over)
        return parse_experiment(data, "plugin.yaml")

    @pytest.mark.chaos
    def test_green(run_experiment, tmp_path):
        j = run_experiment(exp(tmp_path, expectations={"hypothesis_during": "breaks"}))
        assert j.verdict == "passed"

    @pytest.mark.chaos
    def test_red(run_experiment, tmp_path):
        run_experiment(exp(tmp_path, expectations={"hypothesis_during": "holds"}))

    @pytest.mark.chaos
    def test_needs_engine(run_experiment, tmp_path):
        run_experiment(exp(tmp_path, requires=["remediation"]))
''')


def test_plugin_passes_fails_with_journal_and_skips_with_reason(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(TESTS)
    helpers = (Path(__file__).parent / "chaos_helpers.py").read_text()
    (tmp_path / "chaos_fixture_probes.py").write_text(helpers)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    journals = tmp_path / "journals"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "chaos.pytest_plugin", "-q", "-rs",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "/dev/null",
         "--chaos-journal-dir", str(journals), str(tmp_path / "test_suite.py")],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 1 passed, 1 skipped" in out
    assert "plugin file fault: FAILED: steady state holds during the fault" in out
    assert f"journal {journals}" in out
    assert "requires remediation" in out and "override the chaos_engine fixture" in out
    assert len(list(journals.glob("*.json"))) == 3  # green, red and skipped all journalled


def test_chaos_engine_option_needs_the_local_lab(tmp_path):
    """--chaos-engine with --chaos-target is a usage error, said before anything runs."""
    (tmp_path / "test_x.py").write_text("def test_x(chaos_engine):\n    pass\n")
    target = tmp_path / "t.json"
    target.write_text('{"replicas": {}}')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "chaos.pytest_plugin", "-q", "-p",
         "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path),
         "--chaos-target", str(target), "--chaos-engine", "chaos_helpers:scripted_engine",
         str(tmp_path / "test_x.py")], capture_output=True, text=True, env=env, timeout=60,
        cwd=tmp_path)
    assert proc.returncode != 0
    assert "--chaos-engine starts an engine beside the local lab" in proc.stdout + proc.stderr
