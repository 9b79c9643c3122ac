"""Regression guard: the best detector's NAB score on the development split (slow, ~10 s).

Runs only where ``shared/datasets/nab`` sits beside the repository (as in CI and the workspace).
The floor is a little under the measured 62.4 so that a real regression fails, noise does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anomaly.nab.corpus import load_corpus, run_detector
from anomaly.nab.scorer import prepare_file, score_all_profiles
from anomaly.registry import BEST_NAB, make_detector

NAB = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"


@pytest.mark.slow
@pytest.mark.skipif(not (NAB / "windows.json").is_file(), reason="NAB dev split not beside the repo")
def test_best_detector_nab_scores_do_not_regress() -> None:
    files = load_corpus(NAB / "data", NAB / "windows.json")
    assert len(files) == 51
    scores = run_detector(lambda: make_detector(BEST_NAB), files, progress=None)
    prepared = [prepare_file(f.name, f.timestamps, scores[f.name], f.windows) for f in files]
    result = score_all_profiles(prepared)
    assert result["standard"].normalized >= 60.0
    assert result["reward_low_FP_rate"].normalized >= 50.0
    assert result["reward_low_FN_rate"].normalized >= 65.0
