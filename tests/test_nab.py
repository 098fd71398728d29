"""NAB scoring (anomaly_api.nab): hand-computed cases, file reading, published scores.

Notation in the hand computations: NAB's scaled sigmoid is
``sigma(y) = 2 / (1 + exp(5 y)) - 1 = tanh(-5 y / 2)``, so ``sigma(-1) = tanh(2.5)``.
A detection on row ``i`` of a window of rows ``[l, r]`` (width ``w``) is worth
``tp * sigma(-(r - i + 1) / w) / sigma(-1)``; one on row ``i`` after such a window
costs ``fp * sigma((i - r) / (w - 1))`` (``-fp`` when ``(i - r) / (w - 1) > 3`` or
when no window precedes it). Files of 100 rows have ``floor(0.15 * 100) = 15``
probation rows (0..14).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.nab import (
    PROFILES,
    CorpusScore,
    LabelledFile,
    probation_rows,
    read_corpus,
    read_results_scores,
    score_all_profiles,
    score_corpus,
    window_labels,
    window_rows,
)

STANDARD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]
MAX_TP = math.tanh(2.5)  # sigma(-1)
START = np.datetime64("2024-01-01T00:00:00", "s")


def make_file(
    rows: int, windows: Sequence[tuple[int, int]] = (), name: str = "cat/file.csv"
) -> LabelledFile:
    """A file of ``rows`` one-minute rows whose windows are given as row indices."""
    timestamps = START + np.arange(rows).astype("timedelta64[m]")
    return LabelledFile(
        name=name,
        timestamps=timestamps,
        values=np.zeros(rows),
        windows=[(timestamps[first], timestamps[last]) for first, last in windows],
    )


def fire(rows: int, at: Sequence[int], score: float = 1.0) -> np.ndarray:
    """Anomaly scores: ``score`` on the rows ``at``, 0 elsewhere."""
    scores = np.zeros(rows)
    scores[list(at)] = score
    return scores


def tp_value(row: int, first: int, last: int) -> float:
    width = last - first + 1
    return math.tanh(5 * (last - row + 1) / width / 2) / MAX_TP


def fp_value(row: int, last: int, width: int, fp_weight: float = 0.11) -> float:
    position = (row - last) / (width - 1)
    return fp_weight * (-1.0 if position > 3 else -math.tanh(5 * position / 2))


# --- probation ---------------------------------------------------------------------


def test_probation_rows_follows_nab_formula() -> None:
    # min(floor(0.15 * n), 0.15 * 5000), with the float product NAB computes.
    assert [probation_rows(n) for n in (0, 6, 7, 100, 4032, 5000, 5006, 22695)] == [
        0,
        0,
        1,
        15,
        604,
        750,
        750,
        750,
    ]


# --- hand-computed scores ----------------------------------------------------------


def test_perfect_detector_scores_100() -> None:
    # One window, rows 40..49 (w = 10). Firing on row 40 only: y = -(49 - 40 + 1) / 10 = -1,
    # worth tp * sigma(-1) / sigma(-1) = 1. raw = 1 = perfect; null = -1 (one missed window).
    # normalized = 100 * (1 - -1) / (1 - -1) = 100, at threshold 1.0 (threshold 0.0 would
    # add 85 false positives).
    file = make_file(100, [(40, 49)])
    result = score_corpus([file], [fire(100, [40])], STANDARD)
    assert result.threshold == 1.0
    assert result.raw == pytest.approx(1.0)
    assert result.normalized == pytest.approx(100.0)
    assert (result.windows_detected, result.windows_total, result.false_positive_rows) == (1, 1, 0)
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_silent_detector_scores_0() -> None:
    # Never firing: the only candidate thresholds are NAB's "detect nothing" 1.1
    # (raw = -fn = -1 per window) and 0.0 (everything fires: +1 for the window, but
    # 25 rows before it at -0.11 each already cost 2.75). Best is 1.1: raw = null = -1.
    file = make_file(100, [(40, 49)])
    for profile in PROFILES.values():
        result = score_corpus([file], [np.zeros(100)], profile)
        assert result.threshold == 1.1
        assert result.raw == result.null == -profile.fn_weight
        assert result.normalized == 0.0
        assert (result.windows_detected, result.false_positive_rows) == (0, 0)
        assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)


def test_late_detection_earns_less_than_early() -> None:
    # Window rows 40..49 (w = 10). Row 42: y = -(49 - 42 + 1) / 10 = -0.8,
    # value = tanh(2.0) / tanh(2.5) = 0.97712. Row 47: y = -0.3,
    # value = tanh(0.75) / tanh(2.5) = 0.64377. normalized = 100 * (value + 1) / 2.
    file = make_file(100, [(40, 49)])
    early = score_corpus([file], [fire(100, [42])], STANDARD)
    late = score_corpus([file], [fire(100, [47])], STANDARD)
    assert early.raw == pytest.approx(math.tanh(2.0) / math.tanh(2.5))
    assert late.raw == pytest.approx(math.tanh(0.75) / math.tanh(2.5))
    assert early.raw == pytest.approx(tp_value(42, 40, 49))
    assert early.normalized == pytest.approx(98.856, abs=1e-3)
    assert late.normalized == pytest.approx(82.188, abs=1e-3)
    # The last row of a window is still a (small) true positive: y = -1/10.
    last = score_corpus([file], [fire(100, [49])], STANDARD)
    assert last.raw == pytest.approx(math.tanh(0.25) / math.tanh(2.5))
    assert last.windows_detected == 1


def test_false_positive_right_after_window_costs_less_than_far_away() -> None:
    # Window rows 40..49 (w = 10), detected on row 40 (+1). An extra alarm on row 50:
    # y = (50 - 49) / 9, cost 0.11 * sigma(1/9) = -0.11 * tanh(5/18) = -0.029809.
    # On row 90: y = 41/9 > 3, cost -0.11. Before any window (row 20): -0.11.
    file = make_file(100, [(40, 49)])
    near = score_corpus([file], [fire(100, [40, 50])], STANDARD)
    far = score_corpus([file], [fire(100, [40, 90])], STANDARD)
    before = score_corpus([file], [fire(100, [20, 40])], STANDARD)
    assert near.raw == pytest.approx(1 - 0.11 * math.tanh(5 / 18))
    assert near.raw == pytest.approx(1 + fp_value(50, 49, 10))
    assert far.raw == pytest.approx(1 - 0.11)
    assert before.raw == pytest.approx(1 - 0.11)
    assert near.raw > far.raw
    assert near.false_positive_rows == far.false_positive_rows == 1
    # reward_low_FP_rate doubles the cost: 1 - 0.22; normalized 100 * 1.78 / 2 = 89.
    assert score_corpus([file], [fire(100, [40, 90])], LOW_FP).normalized == pytest.approx(89.0)


def test_detections_in_probation_are_ignored() -> None:
    # Rows 0..14 are probation. Alarms on rows 3 and 10 plus the window start 40:
    # raw = 1 exactly as without them (normalized 100). The same alarm on row 20,
    # after probation and before any window, costs 0.11: 100 * (0.89 + 1) / 2 = 94.5.
    file = make_file(100, [(40, 49)])
    ignored = score_corpus([file], [fire(100, [3, 10, 40])], STANDARD)
    assert ignored.raw == pytest.approx(1.0)
    assert ignored.normalized == pytest.approx(100.0)
    assert ignored.false_positive_rows == 0
    counted = score_corpus([file], [fire(100, [20, 40])], STANDARD)
    assert counted.normalized == pytest.approx(94.5)
    # High scores only inside probation are not even threshold candidates: the
    # candidates are 1.1 and 0.0, and 1.1 (raw -1) wins.
    only_probation = score_corpus([file], [fire(100, [5])], STANDARD)
    assert only_probation.threshold == 1.1
    assert only_probation.normalized == 0.0


def test_window_inside_probation_counts_only_in_perfect() -> None:
    # Windows rows 2..5 (all in probation) and 40..49. NAB's sweeper gives the first
    # window no score at all (no FN), but its runner counts it in perfect = 2 * tp:
    # null = -1, raw = 1, normalized = 100 * (1 + 1) / (2 + 1) = 66.67. Recall leaves
    # the unscoreable window out: 1 / 1.
    file = make_file(100, [(2, 5), (40, 49)])
    result = score_corpus([file], [fire(100, [2, 40])], STANDARD)
    assert (result.raw, result.null, result.perfect) == pytest.approx((1.0, -1.0, 2.0))
    assert result.normalized == pytest.approx(200 / 3)
    assert (result.windows_detected, result.windows_total, result.recall) == (1, 2, 1.0)


def test_null_and_perfect_normalisation() -> None:
    # Two files, three windows; the detector finds only the first window, at its start.
    # standard:            raw = 1 - 1 - 1 = -1, null = -3, perfect = 3 -> 100 * 2 / 6
    # reward_low_FN_rate:  raw = 1 - 2 - 2 = -3, null = -6, perfect = 3 -> 100 * 3 / 9
    files = [
        make_file(100, [(40, 49)], name="a/one.csv"),
        make_file(100, [(30, 39), (70, 79)], name="b/two.csv"),
    ]
    scores = [fire(100, [40]), np.zeros(100)]
    results = score_all_profiles(files, scores)
    assert set(results) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    standard, low_fn = results["standard"], results["reward_low_FN_rate"]
    assert (standard.raw, standard.null, standard.perfect) == pytest.approx((-1.0, -3.0, 3.0))
    assert (low_fn.raw, low_fn.null, low_fn.perfect) == pytest.approx((-3.0, -6.0, 3.0))
    assert standard.normalized == pytest.approx(100 / 3)
    assert low_fn.normalized == pytest.approx(100 / 3)
    assert results["reward_low_FP_rate"].normalized == pytest.approx(100 / 3)
    for profile in PROFILES.values():
        assert score_corpus(files, scores, profile) == results[profile.name]


def test_event_precision_recall_f1() -> None:
    # Windows rows 30..39 and 60..69 (w = 10). Alarms (score 1) on 30 (first window's
    # start), 50, 51, 52 (one run outside windows) and 90 (a second run).
    # TP = 1 window, FN = 1 window, FP events = 2, FP rows = 4:
    # precision = 1/3, recall = 1/2, F1 = 2 * (1/6) / (5/6) = 0.4.
    # raw = 1 - 1 + 0.11 * (sigma(11/9) + sigma(12/9) + sigma(13/9)) - 0.11 (row 90:
    # y = 21/9 < 3 but sigma(21/9) = -tanh(35/6)), about -0.438 > null = -2.
    file = make_file(100, [(30, 39), (60, 69)])
    result = score_corpus([file], [fire(100, [30, 50, 51, 52, 90])], STANDARD)
    assert result.threshold == 1.0
    expected_raw = 1 - 1 + sum(fp_value(row, 39, 10) for row in (50, 51, 52))
    expected_raw += fp_value(90, 69, 10)
    assert result.raw == pytest.approx(expected_raw)
    assert (result.windows_detected, result.false_positive_rows) == (1, 4)
    assert result.precision == pytest.approx(1 / 3)
    assert result.recall == pytest.approx(1 / 2)
    assert result.f1 == pytest.approx(0.4)


def test_false_positive_run_does_not_continue_across_files() -> None:
    # File a ends with an alarm on its last row and file b starts (after its 15
    # probation rows) with one: two events, not one.
    files = [
        make_file(100, [(40, 49)], name="a/one.csv"),
        make_file(100, name="b/two.csv"),
    ]
    scores = [fire(100, [40, 99]), fire(100, [15])]
    result = score_corpus(files, scores, STANDARD)
    assert result.false_positive_rows == 2
    assert result.precision == pytest.approx(1 / 3)


def test_threshold_ties_go_to_the_highest_threshold() -> None:
    # Window start scores 0.9, a later row of the same window 0.5: thresholds 0.9 and
    # 0.5 both give raw = 1 (a window counts once, at its earliest detection); NAB's
    # stable sort by score keeps the higher one.
    file = make_file(100, [(40, 49)])
    scores = np.zeros(100)
    scores[40], scores[45] = 0.9, 0.5
    result = score_corpus([file], [scores], STANDARD)
    assert result.threshold == 0.9
    assert result.normalized == pytest.approx(100.0)


def test_scores_must_match_rows() -> None:
    file = make_file(100, [(40, 49)])
    with pytest.raises(ValueError, match="99 anomaly scores for 100 rows"):
        score_corpus([file], [np.zeros(99)], STANDARD)
    with pytest.raises(ValueError, match="finite"):
        score_corpus([file], [fire(100, [3], math.nan)], STANDARD)
    with pytest.raises(ValueError, match="no anomaly window"):
        score_corpus([make_file(100)], [np.zeros(100)], STANDARD)


# --- reading a NAB-layout directory ------------------------------------------------


def write_csv(path: Path, header: str, rows: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def minute(i: int) -> str:
    return str(START + np.timedelta64(i, "m")).replace("T", " ")


@pytest.fixture
def nab_dir(tmp_path: Path) -> Path:
    """2 categories, 3 files; cat_b/dup.csv repeats 00:05:00 on rows 5, 6 and 7."""
    write_csv(
        tmp_path / "data" / "cat_a" / "one.csv",
        "timestamp,value",
        [f"{minute(i)},{i}" for i in range(20)],
    )
    write_csv(
        tmp_path / "data" / "cat_a" / "two.csv",
        "timestamp,value",
        [f"{minute(i)},{i * 0.5}" for i in range(10)],
    )
    dup_minutes = [*range(6), 5, 5, *range(6, 18)]
    write_csv(
        tmp_path / "data" / "cat_b" / "dup.csv",
        "timestamp,value",
        [f"{minute(m)},{row}" for row, m in enumerate(dup_minutes)],
    )
    labels = {
        "cat_a/one.csv": [[minute(10) + ".000000", minute(14) + ".000000"]],
        "cat_a/two.csv": [],
        "cat_b/dup.csv": [
            [minute(2) + ".000000", minute(3) + ".000000"],
            [minute(12) + ".000000", minute(15) + ".000000"],
        ],
        "cat_c/absent_without_windows.csv": [],
    }
    (tmp_path / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    return tmp_path


def test_read_corpus(nab_dir: Path) -> None:
    files = read_corpus(nab_dir / "data", nab_dir / "labels.json")
    assert [f.name for f in files] == ["cat_a/one.csv", "cat_a/two.csv", "cat_b/dup.csv"]
    one, two, dup = files
    assert one.timestamps.dtype == np.dtype("datetime64[s]")
    assert one.timestamps[3] == np.datetime64("2024-01-01T00:03:00")
    assert one.values.dtype == np.float64 and one.values[19] == 19.0
    assert one.windows == [(np.datetime64("2024-01-01T00:10:00"), START + np.timedelta64(14, "m"))]
    assert two.windows == [] and two.values[3] == 1.5
    # Duplicated timestamps are kept, in file order: rows 5, 6, 7 are all 00:05.
    assert len(dup.timestamps) == 20
    assert (dup.timestamps[5:8] == np.datetime64("2024-01-01T00:05:00")).all()
    assert dup.values.tolist() == list(range(20))
    # Windows map to rows by position: 00:12 is row 14, 00:15 row 17.
    assert window_rows(dup) == [(2, 3), (14, 17)]
    assert window_labels(dup).tolist() == [0, 0, 1, 1] + [0] * 10 + [1, 1, 1, 1, 0, 0]
    assert window_labels(dup).dtype == np.int8
    assert window_rows(one) == [(10, 14)]


def test_read_corpus_rejects_unlabelled_csv(nab_dir: Path) -> None:
    write_csv(nab_dir / "data" / "cat_b" / "extra.csv", "timestamp,value", [f"{minute(0)},1"])
    with pytest.raises(ValueError, match=r"no entry for cat_b/extra\.csv"):
        read_corpus(nab_dir / "data", nab_dir / "labels.json")


def test_read_corpus_rejects_bad_windows(nab_dir: Path) -> None:
    labels_path = nab_dir / "labels.json"
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    # An edge on the duplicated 00:05:00 matches three rows: NAB's labeler refuses it.
    labels["cat_b/dup.csv"] = [[minute(5) + ".000000", minute(7) + ".000000"]]
    labels_path.write_text(json.dumps(labels), encoding="utf-8")
    with pytest.raises(ValueError, match=r"cat_b/dup\.csv: window start .* matches 3"):
        read_corpus(nab_dir / "data", labels_path)
    labels["cat_b/dup.csv"] = [[minute(2) + ".500000", minute(3) + ".000000"]]
    labels_path.write_text(json.dumps(labels), encoding="utf-8")
    with pytest.raises(ValueError, match="not a whole second"):
        read_corpus(nab_dir / "data", labels_path)
    labels["cat_b/dup.csv"] = []
    labels["cat_c/missing.csv"] = [[minute(2) + ".000000", minute(3) + ".000000"]]
    labels_path.write_text(json.dumps(labels), encoding="utf-8")
    with pytest.raises(ValueError, match=r"cat_c/missing\.csv"):
        read_corpus(nab_dir / "data", labels_path)


def test_read_results_scores(nab_dir: Path) -> None:
    files = read_corpus(nab_dir / "data", nab_dir / "labels.json")
    for file in files:
        category, _, base = file.name.rpartition("/")
        labels = window_labels(file)
        rows = [
            f"{str(t).replace('T', ' ')},{v},{i / 100},{labels[i]}"
            for i, (t, v) in enumerate(zip(file.timestamps, file.values, strict=True))
        ]
        write_csv(
            nab_dir / "results" / "det" / category / f"det_{base}",
            "timestamp,value,anomaly_score,label",
            rows,
        )
    scores = read_results_scores(nab_dir / "results", "det", files)
    assert [len(s) for s in scores] == [20, 10, 20]
    assert scores[2][7] == pytest.approx(0.07)
    with pytest.raises(ValueError, match="no results file"):
        read_results_scores(nab_dir / "results", "other", files)


# --- NAB's published scores on the development subset -----------------------------

NAB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "nab"

# README of the data: normalized scores per profile, and for the standard profile the
# threshold NAB chose, the windows found (of 25) and the detected rows outside windows.
# windowedGaussian's standard threshold is really 0.999999999999 (its lowFP one is 1.0);
# the README rounds both to 1.0.
PUBLISHED = [
    ("numenta", "standard", 61.30),
    ("numenta", "reward_low_FP_rate", 54.31),
    ("numenta", "reward_low_FN_rate", 66.20),
    ("windowedGaussian", "standard", 12.07),
    ("windowedGaussian", "reward_low_FP_rate", 4.81),
    ("windowedGaussian", "reward_low_FN_rate", 16.04),
]
STANDARD_DETAILS = {"numenta": (0.6021, 19, 34), "windowedGaussian": (1.0, 6, 40)}

needs_nab_data = pytest.mark.skipif(
    not NAB_DIR.is_dir(),
    reason=f"NAB development data not found at {NAB_DIR} (it is not shipped with the "
    "repository; the test runs wherever that directory exists, CI included)",
)


@pytest.fixture(scope="module")
def published_results() -> dict[str, dict[str, CorpusScore]]:
    files = read_corpus(NAB_DIR / "data", NAB_DIR / "labels" / "combined_windows.json")
    assert len(files) == 18
    return {
        detector: score_all_profiles(
            files, read_results_scores(NAB_DIR / "results", detector, files)
        )
        for detector in STANDARD_DETAILS
    }


@needs_nab_data
@pytest.mark.parametrize(("detector", "profile", "expected"), PUBLISHED)
def test_reproduces_published_scores(
    published_results: dict[str, dict[str, CorpusScore]],
    detector: str,
    profile: str,
    expected: float,
) -> None:
    result = published_results[detector][profile]
    assert result.normalized == pytest.approx(expected, abs=0.1)
    assert result.windows_total == 25
    if profile == "standard":
        threshold, windows_detected, false_positive_rows = STANDARD_DETAILS[detector]
        assert result.threshold == pytest.approx(threshold, abs=5e-5)
        assert result.windows_detected == windows_detected
        assert result.false_positive_rows == false_positive_rows
    if (detector, profile) == ("windowedGaussian", "reward_low_FP_rate"):
        assert result.threshold == 1.0
