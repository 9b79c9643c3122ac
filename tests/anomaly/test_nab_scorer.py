"""NAB scorer on constructed cases with hand-computed expected scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomaly.nab.scorer import (
    PROFILES,
    prepare_file,
    probationary_length,
    score_at_threshold,
    score_corpus,
    sweep_thresholds,
)

N = 100
TS = np.datetime64("2024-01-01T00:00:00") + np.arange(N) * np.timedelta64(60, "s")
WIN = [(str(TS[40]), str(TS[49]))]  # rows 40..49, width 10; probation = 15 rows
STD = PROFILES["standard"]


def ss(x: float) -> float:
    """NAB's scaled sigmoid written out by hand."""
    return -1.0 if x >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


MAX_TP = ss(-1.0)


def file_with(detections: dict[int, float], windows=WIN, name: str = "cat/a.csv"):
    scores = np.zeros(N)
    for i, s in detections.items():
        scores[i] = s
    return prepare_file(name, TS, scores, windows)


def test_probationary_length_rule() -> None:
    assert probationary_length(100) == 15
    assert probationary_length(4000) == 600
    assert probationary_length(15000) == 750  # capped at 0.15 * 5000


def test_detection_at_window_start_scores_a_tp() -> None:
    assert score_at_threshold(file_with({40: 1.0}), STD, 0.5) == pytest.approx(1.0)


def test_detection_mid_window() -> None:
    expected = ss(-(49 - 44 + 1) / 10) / MAX_TP  # ss(-0.6) = 0.905148
    assert expected == pytest.approx(0.905148 / 0.986614, abs=1e-5)
    assert score_at_threshold(file_with({44: 1.0}), STD, 0.5) == pytest.approx(expected)


def test_detection_at_window_end() -> None:
    expected = ss(-0.1) / MAX_TP
    assert score_at_threshold(file_with({49: 1.0}), STD, 0.5) == pytest.approx(expected)
    assert 0.0 < expected < 0.3


def test_only_first_detection_in_window_counts() -> None:
    assert score_at_threshold(file_with({40: 1.0, 45: 1.0, 49: 1.0}), STD, 0.5) == pytest.approx(1.0)


def test_false_positive_far_from_windows_costs_a_fp() -> None:
    # row 20: after probation, before the first window -> -A_FP; window missed -> -A_FN
    assert score_at_threshold(file_with({20: 1.0}), STD, 0.5) == pytest.approx(-0.11 - 1.0)
    # row 99: 50 rows past the window's end, position 50/9 >= 3 -> -A_FP
    assert score_at_threshold(file_with({40: 1.0, 99: 1.0}), STD, 0.5) == pytest.approx(1.0 - 0.11)


def test_false_positive_right_after_window_is_cheap() -> None:
    expected = 1.0 + 0.11 * ss(1 / 9)  # position |49 - 50| / (10 - 1)
    got = score_at_threshold(file_with({40: 1.0, 50: 1.0}), STD, 0.5)
    assert got == pytest.approx(expected)
    assert 1.0 - 0.11 < got < 1.0


def test_probationary_detections_are_ignored() -> None:
    assert score_at_threshold(file_with({5: 1.0, 14: 1.0, 40: 1.0}), STD, 0.5) == pytest.approx(1.0)
    f = file_with({})
    assert len(f.scores) == N - 15


def test_missed_window_costs_a_fn_per_profile() -> None:
    f = file_with({})
    assert score_at_threshold(f, PROFILES["standard"], 0.5) == -1.0
    assert score_at_threshold(f, PROFILES["reward_low_FN_rate"], 0.5) == -2.0
    g = file_with({20: 1.0, 40: 1.0})
    assert score_at_threshold(g, PROFILES["reward_low_FP_rate"], 0.5) == pytest.approx(1.0 - 0.22)


def test_threshold_sweep_picks_the_best_and_normalises() -> None:
    a = file_with({40: 0.8}, name="x/a.csv")  # TP at window start, score 0.8
    b_scores = {45: 0.6}
    b_scores.update({i: 0.7 for i in range(16, 39)})  # 23 far FPs at 0.7
    b = file_with(b_scores, name="y/b.csv")
    sweeps = dict(sweep_thresholds([a, b], STD))
    assert sweeps[1.1] == pytest.approx(-2.0)
    assert sweeps[0.8] == pytest.approx(1.0 - 1.0)
    assert sweeps[0.7] == pytest.approx(0.0 - 23 * 0.11)
    assert sweeps[0.6] == pytest.approx(1.0 - 23 * 0.11 + ss(-(49 - 45 + 1) / 10) / MAX_TP)
    res = score_corpus([a, b], "standard")
    assert res.threshold == 0.8
    assert res.raw == pytest.approx(0.0)
    assert (res.null, res.perfect) == (-2.0, 2.0)
    assert res.normalized == pytest.approx(50.0)
    assert res.per_file == {"x/a.csv": pytest.approx(1.0), "y/b.csv": pytest.approx(-1.0)}
    assert res.per_category() == {"x": pytest.approx(1.0), "y": pytest.approx(-1.0)}


def test_null_and_perfect_detectors_score_0_and_100() -> None:
    null = score_corpus([file_with({})], "standard")
    assert null.normalized == pytest.approx(0.0)
    perfect = score_corpus([file_with({40: 1.0})], "reward_low_FN_rate")
    assert perfect.normalized == pytest.approx(100.0)


def test_sweep_matches_brute_force_on_random_scores() -> None:
    rng = np.random.default_rng(7)
    files = []
    for k in range(4):
        wins = [(str(TS[30 + 5 * k]), str(TS[39 + 5 * k])), (str(TS[70]), str(TS[79]))]
        files.append(prepare_file(f"c{k % 2}/f{k}.csv", TS, np.round(rng.random(N), 2), wins))
    for prof in PROFILES.values():
        for thr, raw in sweep_thresholds(files, prof):
            assert raw == pytest.approx(sum(score_at_threshold(f, prof, thr) for f in files))


def test_window_inside_probation_is_not_counted() -> None:
    f = file_with({}, windows=[(str(TS[2]), str(TS[8])), WIN[0]])
    assert f.n_windows == 1


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="timestamps"):
        prepare_file("a/b.csv", TS, np.zeros(N - 1), WIN)
