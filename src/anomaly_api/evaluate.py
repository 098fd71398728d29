"""Labelled series replayed the way clients use the service, and NAB scoring of the result.

``anomaly-api evaluate`` answers the question a user has before trusting a detector:
*on my labelled incidents, how many would it have caught, how early, and at what cost
in false alarms?* By default it replays every file exactly as a monitoring client uses
the service (the **live** mode):

1. one fit on the first 15% of the rows (NAB's probationary period, at most 750 rows),
   with the detector's default retrain policy (or ``--retrain``);
2. then every later row, in file order, scored once as a single predict: the service
   remembers each point and retrains by itself as the policy says. The row's score is
   the answer's ``score``; nothing else is done.

Every call goes through :class:`~anomaly_api.registry.ModelRegistry`, the code the HTTP
API runs (the fast path first, as the server does), on a throw-away SQLite store (no
fsync), so the figures are what a client gets over HTTP (``benchmarks/nab_http.py``
checks that against a real server). The scores are written in NAB's results layout and
scored with :mod:`anomaly_api.nab` three ways: the **alerts** (the rows whose answer
opened an incident, ``incident: "new"``: what a pager is sent), the **flag** (every row
answered ``anomaly: true``), and, for comparison with NAB's published detectors, the
alerts' scores at the threshold optimised over the corpus per profile (tuned on the
labels, so optimistic).

The earlier **replay** mode (``--mode replay``) fits on the probationary rows, scores
``refit_every`` rows as a batch, re-fits on the trailing ``window`` rows and goes on: a
client that uploads its history again every few points. It is kept for comparison.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from anomaly_api.detectors import DETECTORS
from anomaly_api.detectors.incidents import NEW, ONGOING
from anomaly_api.nab import (
    PROFILES,
    CorpusScore,
    LabelledFile,
    probation_rows,
    read_corpus,
    score_all_profiles,
    window_labels,
)
from anomaly_api.registry import ModelRegistry
from anomaly_api.registry.scoring import incident_codes
from anomaly_api.storage import open_store

DEFAULT_REFIT_EVERY = 10
DEFAULT_WINDOW = 4032
FLAG_THRESHOLD = float(np.nextafter(0.5, 1.0))
"""``score >= FLAG_THRESHOLD`` is ``score > 0.5``: the ``anomaly`` flag every answer
carries (each detector's scores are consistent with it, checked by the detector contract
tests). NAB's figures at this threshold are those of the alerts users act on; the
corpus-optimised threshold is tuned on the labels."""


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """How a file is replayed. ``live``: one fit with ``retrain`` (None: the detector's
    default policy; False: none), then a predict per row. ``replay``: re-fit every
    ``refit_every`` rows on the trailing ``window`` rows, scoring batches in between."""

    refit_every: int = DEFAULT_REFIT_EVERY
    window: int = DEFAULT_WINDOW
    mode: str = "live"
    retrain: Any = None


@dataclass(frozen=True, slots=True)
class FileAnswers:
    """What the answers said of each row of a file (0 in the probationary period): the
    ``score``, the ``incident`` marker's code (:mod:`anomaly_api.detectors.incidents`),
    the side (+1 ``above``, -1 ``below``, 0 neither) and the band's edges (infinite
    where the answer said null)."""

    score: np.ndarray
    incident: np.ndarray
    side: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def empty(cls, rows: int) -> FileAnswers:
        return cls(
            np.zeros(rows, dtype=np.float64),
            np.zeros(rows, dtype=np.int8),
            np.zeros(rows, dtype=np.int8),
            np.full(rows, -np.inf),
            np.full(rows, np.inf),
        )

    def record(self, row: int, answer: Any) -> None:
        """Keep ``row``'s answer (a :class:`~anomaly_api.registry.Prediction` or its JSON)."""
        get = (answer if isinstance(answer, dict) else vars(answer)).get
        self.score[row] = get("score")
        lower, upper = get("lower"), get("upper")
        self.lower[row] = -np.inf if lower is None else lower
        self.upper[row] = np.inf if upper is None else upper
        if get("anomaly"):
            self.incident[row] = NEW if get("incident") == "new" else ONGOING
            self.side[row] = _SIDE_CODES[get("direction")]

    def alert_scores(self) -> np.ndarray:
        """Each row's score where it opened an incident, else 0: the detector's output
        as NAB scores it (one detection per incident), for a threshold sweep."""
        scores: np.ndarray = np.where(self.incident == NEW, self.score, 0.0)
        return scores

    def alerts(self) -> np.ndarray:
        """1.0 at the rows that opened an incident (``incident: "new"``), else 0."""
        alerts: np.ndarray = (self.incident == NEW).astype(np.float64)
        return alerts


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """A detector's scores on the corpus, per profile, and how long the replay took;
    with ``keep_scores``, every file's row scores too."""

    detector: str
    scores: dict[str, CorpusScore]
    seconds: float
    row_scores: list[np.ndarray] | None = None
    flag_scores: dict[str, CorpusScore] | None = None
    """The scores of the ``anomaly`` flag itself (:data:`FLAG_THRESHOLD`)."""
    alert_scores: dict[str, CorpusScore] | None = None
    """The scores of the alerts: the rows whose answer opened an incident."""
    answers: list[FileAnswers] | None = None
    """With ``keep_scores``, every file's answers."""


def flag_scores(
    files: Sequence[LabelledFile], scores: Sequence[np.ndarray]
) -> dict[str, CorpusScore]:
    """NAB's scores, per profile, of the rows whose answer said ``anomaly: true``."""
    return score_all_profiles(files, scores, threshold=FLAG_THRESHOLD)


def alert_scores(
    files: Sequence[LabelledFile], answers: Sequence[FileAnswers]
) -> dict[str, CorpusScore]:
    """NAB's scores, per profile, of the rows whose answer said ``incident: "new"``."""
    return score_all_profiles(files, [answer.alerts() for answer in answers], threshold=0.5)


_SIDE_CODES = {"above": 1, "below": -1, None: 0}


def series_id_for(file: LabelledFile) -> str:
    """A valid series id for a file: ``a/b.csv`` -> ``a.b`` (ids may not contain ``/``)."""
    return file.name.removesuffix(".csv").replace("/", ".")


def live_file(
    registry: ModelRegistry,
    file: LabelledFile,
    detector: str,
    params: Mapping[str, Any] | None = None,
    config: ReplayConfig = ReplayConfig(),
    progress: bool = False,
) -> FileAnswers:
    """The answers for every row of ``file`` as a client gets them (0 in the
    probationary period): one fit, then one predict per row."""
    series_id = series_id_for(file)
    timestamps = file.timestamps.astype("datetime64[s]").astype(np.int64).tolist()
    values = file.values.tolist()
    rows = len(values)
    answers = FileAnswers.empty(rows)
    start = probation_rows(rows)
    registry.fit(
        series_id, timestamps[:start], values[:start], detector, params, retrain=config.retrain
    )
    cached, slow = registry.predict_cached, registry.predict
    with tqdm(
        total=rows - start,
        desc=f"{detector} {file.name}",
        unit="row",
        leave=False,
        disable=not progress,
    ) as bar:
        for row in range(start, rows):
            timestamp, value = timestamps[row], values[row]
            answer = cached(series_id, value, timestamp) or slow(series_id, value, timestamp)
            answers.record(row, answer)
            if row % 1000 == 0:
                bar.update(min(1000, rows - row))
    registry.delete_series(series_id)
    return answers


def replay_file(
    registry: ModelRegistry,
    file: LabelledFile,
    detector: str,
    params: Mapping[str, Any] | None = None,
    config: ReplayConfig = ReplayConfig(),
    progress: bool = False,
) -> FileAnswers:
    """The answers for every row of ``file`` (0 in the probationary period), in the
    replay mode: batches of ``refit_every`` rows, a re-fit on the trailing ``window``
    after each (no stream memory across versions beyond what the fit carries)."""
    series_id = series_id_for(file)
    timestamps = file.timestamps.astype("datetime64[s]").astype(np.int64)
    values = file.values
    rows = values.size
    answers = FileAnswers.empty(rows)
    start = probation_rows(rows)
    registry.fit(series_id, timestamps[:start], values[:start], detector, params, retrain=False)
    with tqdm(
        total=rows - start,
        desc=f"{detector} {file.name}",
        unit="row",
        leave=False,
        disable=not progress,
    ) as bar:
        position = start
        while position < rows:
            end = min(position + config.refit_every, rows)
            _, batch, _ = registry.score_batch(
                series_id, timestamps[position:end], values[position:end]
            )
            answers.score[position:end] = batch.score
            answers.incident[position:end] = incident_codes(batch)
            answers.side[position:end] = batch.side
            answers.lower[position:end] = batch.lower
            answers.upper[position:end] = batch.upper
            first = max(0, end - config.window)
            if end < rows:
                registry.fit(
                    series_id,
                    timestamps[first:end],
                    values[first:end],
                    detector,
                    params,
                    retrain=False,
                )
            bar.update(end - position)
            position = end
    registry.store.delete_series(series_id)
    return answers


def write_results(out_dir: Path, detector: str, file: LabelledFile, scores: np.ndarray) -> Path:
    """``OUT/<detector>/<category>/<detector>_<file>.csv`` in NAB's results layout."""
    category, _, filename = file.name.rpartition("/")
    path = out_dir / detector / category / f"{detector}_{filename}"
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = window_labels(file)
    stamps = np.datetime_as_string(file.timestamps.astype("datetime64[s]"), unit="s")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "anomaly_score", "label"])
        for stamp, value, score, label in zip(stamps, file.values, scores, labels, strict=True):
            writer.writerow(
                [stamp.replace("T", " "), repr(float(value)), f"{score:.6f}", int(label)]
            )
    return path


def evaluate_detector(
    files: Sequence[LabelledFile],
    detector: str,
    params: Mapping[str, Any] | None = None,
    config: ReplayConfig = ReplayConfig(),
    out_dir: Path | None = None,
    progress: bool = False,
    keep_scores: bool = False,
) -> DetectorResult:
    """Replay every file with ``detector`` and score the corpus under every profile."""
    import time

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anomaly-evaluate-") as scratch:
        store = open_store(f"sqlite:///{scratch}/evaluate.db", durable=False)
        registry = ModelRegistry(
            store,
            default_detector=detector,
            model_cache_size=64,
            training_points_cap=0 if config.mode == "replay" else 100_000,
            stream_flush_s=0,  # nothing to save: everything stays in memory
        )
        play = replay_file if config.mode == "replay" else live_file
        try:
            answers = [play(registry, file, detector, params, config, progress) for file in files]
        finally:
            registry.close()
    all_scores = [answer.score for answer in answers]
    if out_dir is not None:
        for file, scores in zip(files, all_scores, strict=True):
            write_results(out_dir, detector, file, scores)
    return DetectorResult(
        detector=detector,
        scores=score_all_profiles(files, [answer.alert_scores() for answer in answers]),
        seconds=time.perf_counter() - started,
        row_scores=all_scores if keep_scores else None,
        flag_scores=flag_scores(files, all_scores),
        alert_scores=alert_scores(files, answers),
        answers=answers if keep_scores else None,
    )


def evaluate(
    data_dir: Path,
    labels_file: Path,
    detectors: Sequence[str],
    config: ReplayConfig = ReplayConfig(),
    out_dir: Path | None = None,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    keep_scores: bool = False,
) -> list[DetectorResult]:
    """Evaluate each of ``detectors`` on the NAB-layout corpus."""
    files = read_corpus(data_dir, labels_file)
    return [
        evaluate_detector(files, name, params, config, out_dir, progress, keep_scores)
        for name in detectors
    ]


def detector_names(choice: str) -> list[str]:
    """``all`` or one registered name (or a comma-separated list)."""
    if choice == "all":
        return sorted(DETECTORS)
    names = [name.strip() for name in choice.split(",") if name.strip()]
    unknown = [name for name in names if name not in DETECTORS]
    if unknown or not names:
        raise ValueError(
            f"unknown detector(s) {', '.join(unknown) or choice!r}; "
            f"valid: all, {', '.join(sorted(DETECTORS))}"
        )
    return names


def format_results(results: Sequence[DetectorResult]) -> str:
    """A table: NAB scores per profile at the corpus-optimised threshold on the alerts'
    scores (each row's score where it opened an incident), event-level figures at its
    standard threshold, then NAB's standard and low-FP scores of the
    ``anomaly`` flag itself (``flag std``, ``flag lowFP``: every anomalous row is a
    detection) and of the alerts (``alert std``, ``alert lowFP``: the rows that opened an
    incident, what a pager would be sent)."""
    header = (
        f"{'detector':<10} {'standard':>9} {'low_FP':>8} {'low_FN':>8} {'threshold':>10} "
        f"{'windows':>8} {'FP rows':>8} {'precision':>9} {'recall':>7} {'F1':>6} {'seconds':>8} "
        f"{'flag std':>9} {'flag lowFP':>10} {'alert std':>9} {'alert lowFP':>11}"
    )
    lines = [header, "-" * len(header)]
    for result in sorted(results, key=lambda r: -r.scores["standard"].normalized):
        standard = result.scores["standard"]
        flags = result.flag_scores
        flag_columns = (
            f"{flags['standard'].normalized:>9.2f} {flags['reward_low_FP_rate'].normalized:>10.2f}"
            if flags is not None
            else f"{'-':>9} {'-':>10}"
        )
        alerts = result.alert_scores
        alert_columns = (
            f"{alerts['standard'].normalized:>9.2f} "
            f"{alerts['reward_low_FP_rate'].normalized:>11.2f}"
            if alerts is not None
            else f"{'-':>9} {'-':>11}"
        )
        lines.append(
            f"{result.detector:<10} {standard.normalized:>9.2f} "
            f"{result.scores['reward_low_FP_rate'].normalized:>8.2f} "
            f"{result.scores['reward_low_FN_rate'].normalized:>8.2f} "
            f"{standard.threshold:>10.4f} "
            f"{standard.windows_detected:>3}/{standard.windows_total:<4} "
            f"{standard.false_positive_rows:>8} {standard.precision:>9.2f} "
            f"{standard.recall:>7.2f} {standard.f1:>6.2f} {result.seconds:>8.1f} "
            f"{flag_columns} {alert_columns}"
        )
    assert set(PROFILES) >= {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    return "\n".join(lines)
