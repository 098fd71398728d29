"""Scoring detectors the way the Numenta Anomaly Benchmark (NAB v1.1) does.

NAB (Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection Algorithms - the
Numenta Anomaly Benchmark", IEEE ICMLA; Ahmad, Lavin, Purdy & Agha 2017, "Unsupervised
real-time anomaly detection for streaming data", Neurocomputing 262) rewards a
streaming detector for flagging each labelled anomaly *early* and penalises it for
every false alarm. This module re-implements its scorer (``nab/sweeper.py``,
``nab/optimizer.py``, ``nab/scorer.py`` and the normalisation in ``nab/runner.py`` of
https://github.com/numenta/NAB, commit ``ea702d7``) with numpy, so that the service can
report scores comparable with NAB's published scoreboard. The method, as NAB's code
does it:

* **Windows.** Each labelled anomaly is a window ``[start, end]`` of row timestamps.
  A window's rows are found by *position*: it opens on the row whose timestamp equals
  ``start`` and closes on the row whose timestamp equals ``end``. NAB's labeler
  requires both edges to occur exactly once in the file; duplicated timestamps
  elsewhere (NAB's ``ec2_request_latency_system_failure`` and
  ``machine_temperature_system_failure`` have some) are then harmless, because every
  other row is scored by its position, never by its time.
* **Scaled sigmoid.** ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` (``-1`` beyond ``y > 3``).
  A row ``i`` inside a window of rows ``[l, r]`` (width ``w = r - l + 1``) sits at
  ``y = -(r - i + 1) / w``; detecting it is worth ``tp_weight * sigma(y) / sigma(-1)``,
  which is exactly ``tp_weight`` on the window's first row and falls towards 0 at its
  end. A row after a window sits at ``y = (i - r) / (w - 1)`` relative to the closest
  preceding window and a detection there costs ``fp_weight * sigma(y)``: close to 0
  right after the window (the anomaly may be still going on), up to ``-fp_weight``
  far away. A detection before the first window of its file costs ``-fp_weight``.
* **Counting.** A window counts once: only its best (earliest) detection scores; a
  window without detection costs ``-fn_weight``; every detected row outside the
  windows costs its own value.
* **Probation.** The first ``min(floor(0.15 n), 750)`` rows of a file of ``n`` rows
  are a learning period and are not scored at all (:func:`probation_rows`). A window
  with no row after the probation neither earns nor costs anything in the raw score
  (NAB's label combiner drops a first window starting in the probation, so NAB's own
  labels have none), yet it still counts in ``perfect`` below.
* **Profiles.** Three weightings from NAB's ``config/profiles.json``
  (:data:`PROFILES`): ``standard`` (TP 1, FP 0.11, FN 1), ``reward_low_FP_rate``
  (FP 0.22) and ``reward_low_FN_rate`` (FN 2).
* **Corpus threshold.** One threshold per detector and profile turns anomaly scores
  into detections (``score >= threshold``). NAB's optimiser sweeps the threshold over
  every distinct anomaly score of the scored rows of the whole corpus (plus 1.1,
  "detect nothing") and keeps the one with the highest summed raw score; among equal
  scores the highest threshold wins (NAB's sort is stable). Here the sweep sorts once
  and uses cumulative sums, so all thresholds cost one ``O(n log n)`` pass.
* **Normalisation.** ``100 * (raw - null) / (perfect - null)``, where ``null`` is the
  score of a detector that never fires (``-fn_weight`` per scored window) and
  ``perfect = tp_weight * windows``. So never firing scores 0 and firing exactly on
  every window's first row scores 100; a noisy detector can go far below 0.

Where this deviates from NAB's code (only where NAB crashes or cannot be followed):

* A window of a single row: NAB divides by ``w - 1 = 0`` when scoring the rows after
  it and crashes; here the denominator is taken as 1.
* Anomaly scores are expected in [0, 1] as in NAB. If some are >= 1.1, NAB's
  "detect nothing" threshold 1.1 would detect them; here that sentinel is moved just
  above the highest score. Scores must be finite (NAB sorts NaN unpredictably).
* NAB's scoring step crashes when the corpus threshold is below every scored anomaly
  score of one file; here the rule ``score >= threshold`` is applied uniformly.
* Windows must be in file order and must not overlap (NAB's label combiner merges
  overlapping windows; its sweeper silently mis-scores them); this raises instead.
* ``perfect`` counts the windows of the files scored; NAB counts every window in its
  labels file, which is the same thing when the labels file lists only those files.
* Floating-point sums run in a different order than NAB's, which can move the raw
  score in its last digits (about 1e-15 here).

Scores reproduced on the NAB development subset (18 files, 25 windows): ``numenta``
61.30 / 54.31 / 66.20 and ``windowedGaussian`` 12.07 / 4.81 / 16.04 (standard /
reward_low_FP_rate / reward_low_FN_rate), as NAB's own scorer gives.

>>> probation_rows(4032), probation_rows(22695)
(604, 750)
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROFILES",
    "CorpusScore",
    "LabelledFile",
    "Profile",
    "probation_rows",
    "read_corpus",
    "read_results_scores",
    "scaled_sigmoid",
    "score_all_profiles",
    "score_corpus",
    "window_labels",
    "window_rows",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROBATION_FRACTION = 0.15
"""NAB's ``probationaryPercent``: this share of each file is a learning period."""

PROBATION_CAP = PROBATION_FRACTION * 5000
"""NAB caps the probation at ``0.15 * 5000 = 750`` rows (``nab/util.getProbationPeriod``)."""

NO_DETECTION_THRESHOLD = 1.1
"""NAB's first sweep threshold, above any score in [0, 1]: it means "detect nothing"."""


@dataclass(frozen=True)
class Profile:
    """One of NAB's application profiles (``config/profiles.json``, ``CostMatrix``).

    ``tn_weight`` is in NAB's profiles but its scorer never uses it: true negatives are
    worth nothing, which is what makes a silent detector the zero of the scale.
    """

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float
    tn_weight: float = 1.0


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
        Profile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
        Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
    )
}


@dataclass(frozen=True, eq=False)
class LabelledFile:
    """One NAB data file with its anomaly windows.

    ``eq=False`` keeps identity equality and hashing: field-wise equality is
    meaningless for numpy arrays (and would raise).
    """

    name: str
    """Path relative to the data directory, with ``/``: ``"realKnownCause/nyc_taxi.csv"``."""
    timestamps: npt.NDArray[np.datetime64]
    """``datetime64[s]``, one per row, in file order (not necessarily increasing)."""
    values: FloatArray
    windows: list[tuple[np.datetime64, np.datetime64]]
    """Anomaly windows ``(start, end)``, both row timestamps, in file order."""

    def __post_init__(self) -> None:
        timestamps = np.asarray(self.timestamps, dtype="datetime64[s]")
        values = np.asarray(self.values, dtype=np.float64)
        if timestamps.ndim != 1 or values.shape != timestamps.shape:
            raise ValueError(
                f"{self.name}: timestamps and values must be 1-D and of equal length, "
                f"got shapes {timestamps.shape} and {values.shape}"
            )
        windows = [(_seconds(start), _seconds(end)) for start, end in self.windows]
        # Normalising in a frozen dataclass needs object.__setattr__.
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "windows", windows)


def _seconds(value: np.datetime64) -> np.datetime64:
    """``value`` as ``datetime64[s]`` (truncating any fraction of a second)."""
    seconds: np.datetime64 = np.datetime64(value).astype("datetime64[s]")
    return seconds


@dataclass(frozen=True)
class CorpusScore:
    """A detector's NAB result on a corpus for one profile.

    ``normalized`` is NAB's reported score; ``raw``, ``null`` and ``perfect`` are the
    three sums it is computed from (see the module docstring). The remaining fields
    describe the detections at ``threshold`` (``score >= threshold``, rows after the
    probationary period only):

    * ``windows_detected`` / ``windows_total``: windows with at least one detection /
      all windows of the files (as NAB counts them for ``perfect``).
    * ``false_positive_rows``: detected rows outside every window (NAB's ``FP``).
    * Event-level ``precision``, ``recall`` and ``f1`` (not part of NAB): a true
      positive is a detected window; a false-positive event is a maximal run of
      consecutive detected rows outside every window, so a burst of alarms counts once.
      ``recall = windows_detected / scored windows``, where windows lying entirely in
      the probationary period are left out, as NAB's raw score leaves them out (they
      can be neither found nor missed); ``precision = TP / (TP + FP events)``;
      ``f1`` is their harmonic mean. Every 0/0 is defined as 0.
    """

    profile: str
    threshold: float
    normalized: float
    raw: float
    null: float
    perfect: float
    windows_detected: int
    windows_total: int
    false_positive_rows: int
    precision: float
    recall: float
    f1: float


def probation_rows(length: int) -> int:
    """Rows at the start of a file that NAB does not score: ``min(floor(0.15 n), 750)``.

    The float product is NAB's own (``math.floor(0.15 * n)``), so the rounding matches.

    >>> probation_rows(1882), probation_rows(5000), probation_rows(5001), probation_rows(3)
    (282, 750, 750, 0)
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    return int(min(math.floor(PROBATION_FRACTION * length), PROBATION_CAP))


def scaled_sigmoid(position: npt.ArrayLike) -> FloatArray:
    """NAB's ``scaledSigmoid``: ``2 / (1 + exp(5 y)) - 1``, and ``-1`` for ``y > 3``.

    >>> [round(float(v), 5) for v in scaled_sigmoid([-1.0, -0.5, 0.0, 1.0, 3.5])]
    [0.98661, 0.84828, 0.0, -0.98661, -1.0]
    """
    y = np.asarray(position, dtype=np.float64)
    # Written as NAB writes it, 2 * sigmoid(-5 y) - 1, so that rounding matches as far as
    # np.exp matches math.exp; exp overflows to inf for y > ~140 (replaced by -1 anyway).
    with np.errstate(over="ignore"):
        value = 2.0 * (1.0 / (1.0 + np.exp(5.0 * y))) - 1.0
    return np.where(y > 3.0, -1.0, value)


_MAX_TP = float(scaled_sigmoid(-1.0))
"""``sigma(-1)``: NAB divides in-window values by it so a window's first row is worth 1."""


def window_rows(file: LabelledFile) -> list[tuple[int, int]]:
    """Row indices ``(first, last)`` of each window, as NAB's sweeper finds them.

    NAB opens a window on the row whose timestamp equals its start and closes it on
    the row whose timestamp equals its end, and its labeler rejects labels whose edges
    do not occur exactly once in the file; this checks the same, and that the windows
    are in file order without overlapping, because NAB's sweeper mis-scores anything
    else without a word.
    """
    bounds: list[tuple[int, int]] = []
    for start, end in file.windows:
        first = _unique_row(file, start, "start")
        last = _unique_row(file, end, "end")
        if last < first:
            raise ValueError(f"{file.name}: window [{start}, {end}] ends before it starts")
        if bounds and first <= bounds[-1][1]:
            raise ValueError(
                f"{file.name}: window [{start}, {end}] overlaps or precedes the window "
                "before it; windows must be in file order and must not overlap"
            )
        bounds.append((first, last))
    return bounds


def _unique_row(file: LabelledFile, edge: np.datetime64, which: str) -> int:
    rows = np.flatnonzero(file.timestamps == edge)
    if rows.size != 1:
        raise ValueError(
            f"{file.name}: window {which} {edge} must match exactly one row timestamp, "
            f"matches {rows.size}"
        )
    return int(rows[0])


def window_labels(file: LabelledFile) -> npt.NDArray[np.int8]:
    """NAB's ``label`` column: 1 on rows whose timestamp lies in a window, else 0.

    This follows NAB's labeler (``CorpusLabel.getLabels``), which compares *times*
    (``start <= t <= end``), not positions; it is what NAB writes into results files.
    Scoring uses the positions of :func:`window_rows`; the two differ only if a
    timestamp inside a window's time range also occurs outside its rows, which does not
    happen in the NAB development subset.
    """
    labels = np.zeros(file.timestamps.shape, dtype=np.int8)
    for start, end in file.windows:
        labels[(file.timestamps >= start) & (file.timestamps <= end)] = 1
    return labels


@dataclass(frozen=True, eq=False)
class _Corpus:
    """The scored rows (after probation) of every file, concatenated in file order."""

    scores: FloatArray
    window: IntArray
    """Corpus-wide window number of each row, -1 outside every window."""
    sigmoid: FloatArray
    """Unweighted ``sigma(y)`` of each row (``-1`` before a file's first window)."""
    file_starts: IntArray
    """Offset of each file's first scored row; one more entry at the end."""
    windows_total: int
    scored_windows: IntArray
    """Corpus-wide numbers of the windows with at least one scored row."""
    order: IntArray
    """Stable descending sort of ``scores``, the order of NAB's sweep."""

    def values(self, profile: Profile) -> FloatArray:
        """NAB's weighted per-row value (its ``sweepScore``) of detecting each row."""
        inside = self.window >= 0
        # Same operation order as NAB: unweighted * tpWeight / maxTP, unweighted * fpWeight.
        return np.where(
            inside,
            self.sigmoid * profile.tp_weight / _MAX_TP,
            self.sigmoid * profile.fp_weight,
        )


def _file_rows(file: LabelledFile) -> tuple[IntArray, FloatArray]:
    """Window number (-1 outside) and unweighted ``sigma`` of every row of a file."""
    n = len(file.timestamps)
    window = np.full(n, -1, dtype=np.int64)
    sigmoid = np.full(n, -1.0)  # before the first window: as far as can be
    rows = np.arange(n, dtype=np.float64)
    bounds = window_rows(file)
    for k, (first, last) in enumerate(bounds):
        width = last - first + 1
        window[first : last + 1] = k
        sigmoid[first : last + 1] = scaled_sigmoid(-(last - rows[first : last + 1] + 1) / width)
        stop = bounds[k + 1][0] if k + 1 < len(bounds) else n
        after = rows[last + 1 : stop]
        # NAB divides by width - 1 and crashes on one-row windows; use 1 there.
        sigmoid[last + 1 : stop] = scaled_sigmoid(np.abs(last - after) / max(width - 1, 1))
    return window, sigmoid


def _prepare(files: Sequence[LabelledFile], scores: Sequence[npt.ArrayLike]) -> _Corpus:
    if len(files) != len(scores):
        raise ValueError(f"{len(files)} files but {len(scores)} score arrays")
    kept_scores: list[FloatArray] = []
    kept_window: list[IntArray] = []
    kept_sigmoid: list[FloatArray] = []
    starts = [0]
    scored: list[IntArray] = []
    offset = 0
    for file, raw in zip(files, scores, strict=True):
        file_scores = np.asarray(raw, dtype=np.float64)
        if file_scores.shape != file.timestamps.shape:
            raise ValueError(
                f"{file.name}: {file_scores.size} anomaly scores for {file.timestamps.size} rows"
            )
        if not np.isfinite(file_scores).all():
            raise ValueError(f"{file.name}: anomaly scores must be finite")
        window, sigmoid = _file_rows(file)
        probation = probation_rows(len(file_scores))
        window = window[probation:]
        in_window = window >= 0
        scored.append(np.unique(window[in_window]) + offset)
        kept_window.append(np.where(in_window, window + offset, -1))
        kept_scores.append(file_scores[probation:])
        kept_sigmoid.append(sigmoid[probation:])
        starts.append(starts[-1] + len(window))
        offset += len(file.windows)
    all_scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0)
    return _Corpus(
        scores=all_scores,
        window=np.concatenate(kept_window) if kept_window else np.zeros(0, np.int64),
        sigmoid=np.concatenate(kept_sigmoid) if kept_sigmoid else np.zeros(0),
        file_starts=np.asarray(starts, dtype=np.int64),
        windows_total=offset,
        scored_windows=np.concatenate(scored) if scored else np.zeros(0, np.int64),
        # Descending and stable, like NAB's sorted(..., reverse=True).
        order=np.argsort(-all_scores, kind="stable"),
    )


def _sweep(corpus: _Corpus, profile: Profile) -> tuple[FloatArray, FloatArray]:
    """Raw corpus score for every candidate threshold, highest threshold first.

    Candidates are "detect nothing" followed by each distinct scored anomaly score;
    at threshold ``t`` the detections are the rows with ``score >= t``, which is the
    prefix of the descending sort up to the last row scoring ``t``. False-positive
    costs are a cumulative sum along that order; a window contributes the best value
    among its detected rows, so as the threshold falls its contribution changes only
    when a row beats its running maximum, and the sum of those increments is again a
    cumulative sum.
    """
    fn = profile.fn_weight
    null = -fn * corpus.scored_windows.size
    top = float(corpus.scores.max()) if corpus.scores.size else 0.0
    sentinel = (
        NO_DETECTION_THRESHOLD if top < NO_DETECTION_THRESHOLD else float(np.nextafter(top, np.inf))
    )
    if corpus.scores.size == 0:
        return np.array([sentinel]), np.array([null])

    order = corpus.order
    scores = corpus.scores[order]
    window = corpus.window[order]
    value = corpus.values(profile)[order]
    outside = window < 0
    fp_total = np.cumsum(np.where(outside, value, 0.0))

    gain = np.zeros(len(order))
    inside_at = np.flatnonzero(~outside)
    by_window = inside_at[np.argsort(window[inside_at], kind="stable")]
    grouped = window[by_window]
    edges = np.flatnonzero(np.diff(grouped)) + 1
    for rows in np.split(by_window, edges):
        if rows.size == 0:
            continue
        # NAB starts each window at -fn_weight and keeps max(current, value).
        best = np.maximum.accumulate(np.maximum(value[rows], -fn))
        gain[rows] = np.diff(best, prepend=-fn)
    window_total = null + np.cumsum(gain)

    last_of_value = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    thresholds = np.concatenate(([sentinel], scores[last_of_value]))
    totals = np.concatenate(([null], fp_total[last_of_value] + window_total[last_of_value]))
    return thresholds, totals


def _totals(
    corpus: _Corpus, profile: Profile, detected: npt.NDArray[np.bool_]
) -> tuple[float, float, float]:
    value = corpus.values(profile)
    outside = corpus.window < 0
    false_alarm = detected & outside
    hits = detected & ~outside
    best = np.full(corpus.windows_total, -profile.fn_weight)
    np.maximum.at(best, corpus.window[hits], value[hits])
    raw = float(value[false_alarm].sum() + best[corpus.scored_windows].sum())
    null = -profile.fn_weight * corpus.scored_windows.size
    perfect = profile.tp_weight * corpus.windows_total
    return raw, null, perfect


def raw_totals(
    files: Sequence[LabelledFile],
    scores: Sequence[npt.ArrayLike],
    threshold: float,
    profile: Profile = PROFILES["standard"],
) -> tuple[float, float, float]:
    """NAB's raw, null and perfect totals of ``files`` at ``threshold``: sums over
    files, so the totals of parts add up to the whole's and its normalised score is
    ``100 * (raw - null) / (perfect - null)``. Defined for files without any window too
    (their false positives count), which cross-validation folds need."""
    corpus = _prepare(files, scores)
    return _totals(corpus, profile, corpus.scores >= threshold)


def _score_at(corpus: _Corpus, profile: Profile, threshold: float) -> CorpusScore:
    detected = corpus.scores >= threshold
    outside = corpus.window < 0
    false_alarm = detected & outside
    hits = detected & ~outside
    raw, null, perfect = _totals(corpus, profile, detected)
    if perfect == null:
        raise ValueError(
            "the corpus has no anomaly window to score, so NAB's normalised score "
            "(0 = never fires, 100 = perfect) is undefined"
        )

    windows_detected = int(np.unique(corpus.window[hits]).size)
    previous = np.append(False, false_alarm[:-1])
    previous[corpus.file_starts[:-1]] = False  # a run never continues across files
    fp_events = int(np.count_nonzero(false_alarm & ~previous))
    precision = _ratio(windows_detected, windows_detected + fp_events)
    recall = _ratio(windows_detected, corpus.scored_windows.size)
    return CorpusScore(
        profile=profile.name,
        threshold=threshold,
        normalized=100.0 * (raw - null) / (perfect - null),
        raw=raw,
        null=null,
        perfect=perfect,
        windows_detected=windows_detected,
        windows_total=corpus.windows_total,
        false_positive_rows=int(np.count_nonzero(false_alarm)),
        precision=precision,
        recall=recall,
        f1=_ratio(2.0 * precision * recall, precision + recall),
    )


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else 0.0


def _best(corpus: _Corpus, profile: Profile) -> CorpusScore:
    thresholds, totals = _sweep(corpus, profile)
    # argmax returns the first maximum: the highest threshold among equal scores,
    # as NAB's stable sort by score does.
    return _score_at(corpus, profile, float(thresholds[int(np.argmax(totals))]))


def score_corpus(
    files: Sequence[LabelledFile], scores: Sequence[npt.ArrayLike], profile: Profile
) -> CorpusScore:
    """Score a detector on a corpus for one profile, with NAB's corpus-wide threshold.

    ``scores[i]`` holds the detector's anomaly score for every row of ``files[i]``, in
    file order. The threshold is the one maximising the raw score summed over all
    files (see the module docstring); raises ``ValueError`` if the files have no
    window at all, since the normalised score is then undefined.
    """
    return _best(_prepare(files, scores), profile)


def score_all_profiles(
    files: Sequence[LabelledFile],
    scores: Sequence[npt.ArrayLike],
    profiles: Mapping[str, Profile] = PROFILES,
    threshold: float | None = None,
) -> dict[str, CorpusScore]:
    """:func:`score_corpus` for each profile (NAB's three by default), sorting once; at
    ``threshold`` (detections: ``score >= threshold``) instead of the best one when given."""
    corpus = _prepare(files, scores)
    if threshold is not None:
        return {name: _score_at(corpus, profile, threshold) for name, profile in profiles.items()}
    return {name: _best(corpus, profile) for name, profile in profiles.items()}


def read_corpus(data_dir: Path, labels_file: Path) -> list[LabelledFile]:
    """Read a NAB-layout corpus: ``data_dir/<category>/<file>.csv`` and a windows JSON.

    Every CSV under ``data_dir`` (hidden files and folders skipped; NAB skips hidden
    files) must have an entry in ``labels_file``, which maps ``"<category>/<file>.csv"``
    to a list of ``[start, end]`` windows written ``YYYY-MM-DD HH:MM:SS.ffffff``; an entry with
    windows but no CSV is an error too (NAB's labeler fails on it), an entry with no
    windows and no CSV is ignored. Window edges must be row timestamps occurring once
    (see :func:`window_rows`). Files come back sorted by name.
    """
    if not data_dir.is_dir():
        raise ValueError(f"data directory {data_dir} does not exist")
    try:
        labels = json.loads(labels_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read labels file {labels_file}: {error}") from error
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_file}: expected an object mapping file names to windows")

    paths = {
        path.relative_to(data_dir).as_posix(): path
        for path in data_dir.rglob("*.csv")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(data_dir).parts)
    }
    unlabelled = sorted(set(paths) - set(labels))
    if unlabelled:
        raise ValueError(f"{labels_file} has no entry for {', '.join(unlabelled)}")
    missing = sorted(name for name, windows in labels.items() if windows and name not in paths)
    if missing:
        raise ValueError(f"{labels_file} labels files missing from {data_dir}: {missing}")

    files = []
    for name in sorted(paths):
        timestamps, values = _read_data_csv(paths[name])
        file = LabelledFile(
            name=name,
            timestamps=timestamps,
            values=values,
            windows=_parse_windows(labels[name], f"{labels_file} [{name!r}]"),
        )
        window_rows(file)  # fail at load time, as NAB's labeler does
        files.append(file)
    return files


def _parse_windows(raw: object, where: str) -> list[tuple[np.datetime64, np.datetime64]]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list of [start, end] windows")
    windows = []
    for item in raw:
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(t, str) for t in item)
        ):
            raise ValueError(f"{where}: a window must be [start, end] strings, got {item!r}")
        windows.append((_label_time(item[0], where), _label_time(item[1], where)))
    return windows


def _label_time(text: str, where: str) -> np.datetime64:
    """A window edge: NAB writes ``.ffffff`` but the edge must be a whole-second row time."""
    try:
        micro = np.datetime64(text.strip(), "us")
    except ValueError as error:
        raise ValueError(f"{where}: bad window timestamp {text!r}") from error
    seconds = _seconds(micro)
    if seconds != micro:
        raise ValueError(f"{where}: window timestamp {text!r} is not a whole second")
    return seconds


def _read_csv_columns(path: Path, columns: Sequence[str]) -> list[list[str]]:
    """The named columns of a CSV with a header row, as strings."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        header = [name.strip() for name in header]
        absent = [name for name in columns if name not in header]
        if absent:
            raise ValueError(f"{path}: no column {absent} in header {header}")
        indices = [header.index(name) for name in columns]
        out: list[list[str]] = [[] for _ in columns]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: {len(row)} fields, header has {len(header)}")
            for column, index in zip(out, indices, strict=True):
                column.append(row[index])
    return out


def _parse_times(texts: list[str], path: Path) -> npt.NDArray[np.datetime64]:
    try:
        return np.array(texts, dtype="datetime64[s]")
    except ValueError as error:
        raise ValueError(f"{path}: bad timestamp ({error})") from error


def _parse_floats(texts: list[str], path: Path, column: str) -> FloatArray:
    try:
        return np.array(texts, dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: bad number in column {column!r} ({error})") from error


def _read_data_csv(path: Path) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    times, values = _read_csv_columns(path, ("timestamp", "value"))
    return _parse_times(times, path), _parse_floats(values, path, "value")


def read_results_scores(
    results_dir: Path, detector: str, files: Sequence[LabelledFile]
) -> list[FloatArray]:
    """The ``anomaly_score`` column of NAB results files, one array per file, in order.

    NAB writes ``<results_dir>/<detector>/<category>/<detector>_<file>.csv`` with
    columns ``timestamp,value,anomaly_score,label``. Each must have one row per data
    row with the same timestamps, since NAB matches scores to rows by position.
    """
    out = []
    for file in files:
        category, _, base = file.name.rpartition("/")
        path = results_dir / detector / category / f"{detector}_{base}"
        if not path.is_file():
            raise ValueError(f"no results file {path} for {file.name}")
        times, scores = _read_csv_columns(path, ("timestamp", "anomaly_score"))
        parsed = _parse_times(times, path)
        if parsed.shape != file.timestamps.shape or (parsed != file.timestamps).any():
            raise ValueError(
                f"{path}: rows do not match {file.name} "
                f"({parsed.size} rows for {file.timestamps.size}, or different timestamps)"
            )
        out.append(_parse_floats(scores, path, "anomaly_score"))
    return out
