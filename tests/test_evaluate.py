"""The evaluator end to end, on a small generated NAB-layout corpus (no ../shared needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomaly_api.cli import app
from anomaly_api.evaluate import (
    FLAG_THRESHOLD,
    ReplayConfig,
    detector_names,
    evaluate,
    format_results,
    live_file,
    replay_file,
    series_id_for,
)
from anomaly_api.nab import read_corpus, score_all_profiles
from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store

ROWS = 1200
START = np.datetime64("2024-01-01T00:00:00", "s")
FIVE_MINUTES = np.timedelta64(300, "s")


def stamp(row: int) -> str:
    return str(START + row * FIVE_MINUTES).replace("T", " ")


def write_corpus(root: Path) -> tuple[Path, Path]:
    """Two files with a spike each inside a labelled window, one file without anomalies."""
    rng = np.random.default_rng(0)
    labels: dict[str, list[list[str]]] = {}
    for name, spike in [("real/spiky.csv", 900), ("real/dip.csv", 700), ("calm/flat.csv", None)]:
        values = 50 + rng.normal(0, 1, ROWS)
        if spike is not None:
            values[spike] += 30 if name.endswith("spiky.csv") else -30
            labels[name] = [[stamp(spike - 40) + ".000000", stamp(spike + 40) + ".000000"]]
        else:
            labels[name] = []
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value"])
            writer.writerows((stamp(row), f"{value:.4f}") for row, value in enumerate(values))
    labels_file = root / "labels.json"
    labels_file.write_text(json.dumps(labels))
    return root / "data", labels_file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_corpus(tmp_path_factory.mktemp("nab"))


def test_replay_is_causal(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    """Changing a future value must not change any earlier score."""
    file = read_corpus(*corpus)[1]
    registry = ModelRegistry(open_store(f"sqlite:///{tmp_path}/e.db", durable=False))
    try:
        config = ReplayConfig(refit_every=7)
        before = replay_file(registry, file, "adaptive", config=config).score
        file.values[1000] += 100.0
        after = replay_file(registry, file, "adaptive", config=config).score
    finally:
        registry.close()
    np.testing.assert_array_equal(before[:1000], after[:1000])
    assert after[1000] > before[1000]
    assert (before[:180] == 0).all()  # the probationary 15% is not scored


def test_the_live_mode_is_a_fit_then_one_predict_per_row(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    file = read_corpus(*corpus)[0]
    registry = ModelRegistry(open_store(f"sqlite:///{tmp_path}/e.db", durable=False))
    try:
        policy = {"every": 100, "window": 500}
        answers = live_file(registry, file, "adaptive", config=ReplayConfig(retrain=policy))
        scores = answers.score
        timestamps = file.timestamps.astype("datetime64[s]").astype(np.int64)
        start = 180
        registry.fit("client", timestamps[:start], file.values[:start], "adaptive", retrain=policy)
        client = [
            registry.predict("client", float(value), int(stamp))
            for stamp, value in zip(timestamps[start:], file.values[start:], strict=True)
        ]
        assert scores[start:].tolist() == [answer.score for answer in client]
        codes = {None: 0, "new": 1, "ongoing": 2}
        assert answers.incident[start:].tolist() == [codes[answer.incident] for answer in client]
        assert answers.alerts().sum() == sum(answer.incident == "new" for answer in client)
        assert (scores[:start] == 0).all()
        assert [v.trigger for v in registry.versions("client")][:2] == ["client", "retrain"]
        file.values[1000] += 100.0
        after = live_file(registry, file, "adaptive", config=ReplayConfig(retrain=policy)).score
        np.testing.assert_array_equal(scores[:1000], after[:1000])  # causal
    finally:
        registry.close()


def test_adaptive_finds_both_incidents_without_false_alarms(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    [result] = evaluate(*corpus, ["adaptive"], out_dir=tmp_path / "out", progress=False)
    standard = result.scores["standard"]
    assert standard.windows_detected == standard.windows_total == 2
    assert standard.false_positive_rows == 0
    assert standard.normalized > 80
    assert standard.f1 == 1.0


def test_results_follow_nab_layout_row_for_row(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    evaluate(*corpus, ["zscore"], out_dir=tmp_path, progress=False)
    path = tmp_path / "zscore" / "real" / "zscore_spiky.csv"
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == ROWS + 1
    assert rows[1][0] == "2024-01-01 00:00:00"
    labels = [int(row[3]) for row in rows[1:]]
    assert sum(labels) == 81 and labels[900] == 1
    assert all(0.0 <= float(row[2]) <= 1.0 for row in rows[1:])


def test_the_command_prints_every_detector(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = corpus
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            str(data),
            "--labels",
            str(labels),
            "--no-progress",
            "--detector",
            "zscore,robust",
            "--refit-every",
            "50",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "zscore" in result.output and "robust" in result.output
    assert (tmp_path / "robust" / "calm" / "robust_flat.csv").exists()


@pytest.mark.parametrize(
    "options",
    [
        ["--mode", "replay", "--refit-every", "50"],
        ["--retrain", "false"],
        ["--retrain", '{"every": "6h", "window": 400}'],
    ],
)
def test_the_command_takes_a_mode_and_a_policy(
    corpus: tuple[Path, Path], options: list[str]
) -> None:
    data, labels = corpus
    command = ["evaluate", "--data", str(data), "--labels", str(labels), "--no-progress"]
    result = CliRunner().invoke(app, [*command, "--detector", "hampel", *options])
    assert result.exit_code == 0, result.output
    assert "hampel" in result.output


def test_the_command_refuses_an_unknown_mode(corpus: tuple[Path, Path]) -> None:
    data, labels = corpus
    result = CliRunner().invoke(
        app, ["evaluate", "--data", str(data), "--labels", str(labels), "--mode", "fast"]
    )
    assert result.exit_code == 2 and "live or replay" in result.output


def test_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="valid: all, adaptive"):
        detector_names("magic")
    assert detector_names("all")[0] == "adaptive"
    result = CliRunner().invoke(
        app, ["evaluate", "--data", ".", "--labels", "x", "--detector", "magic"]
    )
    assert result.exit_code == 2


def test_series_ids_are_valid() -> None:
    from anomaly_api.nab import LabelledFile
    from anomaly_api.series_ids import check_series_id

    file = LabelledFile("realKnownCause/nyc_taxi.csv", np.array([START]), np.zeros(1), [])
    assert check_series_id(series_id_for(file)) == "realKnownCause.nyc_taxi"


def test_table_lists_profiles(corpus: tuple[Path, Path]) -> None:
    results = evaluate(*corpus, ["robust"], config=ReplayConfig(refit_every=100), progress=False)
    table = format_results(results)
    assert "standard" in table and "low_FP" in table and "robust" in table


def test_the_flag_users_get_is_scored_beside_the_tuned_threshold(
    corpus: tuple[Path, Path],
) -> None:
    """``flag std``/``flag lowFP`` score exactly the rows answered ``anomaly: true``:
    the same as scoring 1/0 flags at threshold 1."""
    [result] = evaluate(*corpus, ["zscore"], progress=False, keep_scores=True)
    assert result.flag_scores is not None and result.row_scores is not None
    files = read_corpus(*corpus)
    flags = [(scores > 0.5).astype(np.float64) for scores in result.row_scores]
    expected = score_all_profiles(files, flags, threshold=1.0)
    for profile, score in result.flag_scores.items():
        assert score.normalized == expected[profile].normalized
        assert score.windows_detected == expected[profile].windows_detected
        assert score.false_positive_rows == expected[profile].false_positive_rows
    assert result.flag_scores["standard"].threshold == FLAG_THRESHOLD
    row = next(line for line in format_results([result]).splitlines() if line.startswith("zscore"))
    assert row.split()[-4:-2] == [
        f"{result.flag_scores['standard'].normalized:.2f}",
        f"{result.flag_scores['reward_low_FP_rate'].normalized:.2f}",
    ]


def test_the_alerts_are_the_rows_that_opened_an_incident(corpus: tuple[Path, Path]) -> None:
    """``alert std``/``alert lowFP`` score the rows answered ``incident: "new"``: fewer
    detections than the flag, each the first of its incident."""
    [result] = evaluate(*corpus, ["zscore"], progress=False, keep_scores=True)
    assert result.alert_scores is not None and result.answers is not None
    files = read_corpus(*corpus)
    alerts = [answer.alerts() for answer in result.answers]
    expected = score_all_profiles(files, alerts, threshold=0.5)
    for profile, score in result.alert_scores.items():
        assert score.normalized == expected[profile].normalized
    for answer in result.answers:
        flagged = answer.score > 0.5
        assert np.all((answer.incident > 0) == flagged)
        assert answer.alerts().sum() <= flagged.sum()
    assert sum(answer.alerts().sum() for answer in result.answers) >= 1
    row = next(line for line in format_results([result]).splitlines() if line.startswith("zscore"))
    assert row.split()[-2:] == [
        f"{result.alert_scores['standard'].normalized:.2f}",
        f"{result.alert_scores['reward_low_FP_rate'].normalized:.2f}",
    ]
