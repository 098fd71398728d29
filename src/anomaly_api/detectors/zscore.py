"""``zscore``: the original service's model, with both sides flagged by default."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from itertools import chain
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from anomaly_api.detectors.bands import PointScore, Scores, band_point, band_scores
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import DIRECTION, THRESHOLD, Direction, JsonDict, Parameter
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

_CHUNK = 1024
"""Points a batch is scored in at once before the points it flagged are taken out."""
_DENSE = 16
"""A chunk that advanced fewer points than this before a flag is followed by
:data:`_SCALAR_RUN` points scored one by one: a run of flags would otherwise cost one
array pass per flag."""
_SCALAR_RUN = 64
_MAX_CHUNK = 65_536
_ROUNDS = 8
_DIRECTIONS: tuple[Direction, ...] = ("both", "upper", "lower")
"""Rounds of the fixed-point iteration before the chunked algorithm takes over."""


class ZScoreContext(Context):
    """What a stream added to the training statistics: how many points were learnt and
    the sums of their deviations from the training mean, and of their squares.

    Sums of deviations from a fixed centre are the stable form of running moments (Chan,
    Golub & LeVeque 1983); added in stream order, a batch (``numpy.cumsum``, a sequential
    sum) and a point-by-point stream give the same bits.
    """

    __slots__ = ("learned", "shift_squares", "shift_sum")

    def __init__(self, learned: int = 0, shift_sum: float = 0.0, shift_squares: float = 0.0):
        super().__init__()
        self.learned = learned
        self.shift_sum = shift_sum
        self.shift_squares = shift_squares

    def to_json(self) -> JsonDict:
        return {
            "learned": self.learned,
            "shift_sum": self.shift_sum,
            "shift_squares": self.shift_squares,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            int(data.get("learned", 0)),
            float(data.get("shift_sum", 0.0)),
            float(data.get("shift_squares", 0.0)),
        )

    def _copy(self) -> Self:
        return type(self)(self.learned, self.shift_sum, self.shift_squares)


class ZScoreDetector(Detector):
    """Mean ± ``threshold`` population standard deviations of the training values and of
    every normal point of the stream since.

    This is what the original service fitted (there, upper side only). A point is
    anomalous when it lies *strictly* more than ``threshold`` standard deviations from
    the mean, on both sides by default. Timestamps are not used.

    **Learning from the stream.** Each point the stream brings that is *not* flagged
    joins the statistics (Welford 1962's running mean and variance, kept as shifted sums:
    :class:`ZScoreContext`), so the band follows the data it has seen; a flagged point
    does not, so an incident or a glitch cannot widen the band that should catch the
    next one (the rule river's streaming detectors follow). Points just after the fit
    are judged by the training statistics alone.

    **Score.** ``d² / (1 + d²)`` of ``d = |x - mean| / (threshold · std)``: 0.5 exactly
    at the band's edge. Unlike the calibrated detectors, the unit is the standard
    deviation, as the original service's contract defines ``threshold`` (k in mean ±
    k·std), so a heavy-tailed series is flagged more often than a normal one at the same
    k (``tests/detectors/test_calibration.py`` measures it); ``robust`` is its
    calibrated counterpart.

    A constant training series (zero spread; think of an error counter that is always
    0) is valid: its band has zero width, so any value that differs from the constant is
    anomalous with score 1, and the constant itself scores 0.

    Parameters
    ----------
    threshold : float, default 3.0
        k in mean ± k·std.
    direction : {"both", "upper", "lower"}, default "both"
        Which side(s) of the band count as anomalies.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> series = Series.from_arrays(np.arange(500), rng.normal(50.0, 2.0, 500))
    >>> detector = ZScoreDetector({"threshold": 3.0}).fit(series)
    >>> scores = detector.score([500, 501, 502], [50.0, 59.0, 41.0])
    >>> scores.anomaly.tolist(), scores.side.tolist()
    ([False, True, True], [0, 1, -1])
    """

    name: ClassVar[str] = "zscore"
    fit_cost_us: ClassVar[float] = 0.1
    score_cost_us: ClassVar[float] = 0.3
    description: ClassVar[str] = (
        "Mean ± k standard deviations of the training values (the original model), "
        "two-sided by default; normal points of the stream join the statistics."
    )
    cooldown_default: ClassVar[int] = 4 * 3600  # cross-validated (docs/detection.md)
    min_points: ClassVar[int] = 5
    parameters: ClassVar[tuple[Parameter, ...]] = (THRESHOLD, DIRECTION)
    context_type: ClassVar[type[Context]] = ZScoreContext
    learns: ClassVar[str] = (
        "every point it does not flag joins the running mean and standard deviation"
    )

    mean_: float
    std_: float
    count_: int

    def _fit_core(self, series: Series) -> None:
        values = series.values
        self.count_ = len(series)
        if bool(np.all(values == values[0])):
            # Exact, so that a constant series gives a zero-width band around its own value
            # rather than one a rounding error wide.
            self.mean_, self.std_ = float(values[0]), 0.0
        else:
            self.mean_, self.std_ = float(values.mean()), float(values.std())
        self._derive()

    def initial_context(self) -> ZScoreContext:
        return ZScoreContext()

    def _band(self, learned: int, shift_sum: float, shift_squares: float) -> tuple[float, float]:
        """(mean, half-width) after ``learned`` stream points with these sums."""
        if learned == 0:
            return self.mean_, self.params["threshold"] * self.std_
        total = self.count_ + learned
        shift = shift_sum / total
        variance = (self.count_ * self.std_ * self.std_ + shift_squares) / total - shift * shift
        spread = math.sqrt(variance) if variance > 0.0 else 0.0
        return self.mean_ + shift, self.params["threshold"] * spread

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        learned = context.learned  # type: ignore[attr-defined]
        if learned == 0:
            point = band_point(float(value), self.mean_, self._half_width, self._direction)
        else:  # peek_one's arithmetic, inline: this is the hot path
            total = self.count_ + learned
            shift = context.shift_sum / total  # type: ignore[attr-defined]
            squares = self._squares + context.shift_squares  # type: ignore[attr-defined]
            variance = squares / total - shift * shift
            spread = math.sqrt(variance) if variance > 0.0 else 0.0
            point = band_point(
                float(value), self.mean_ + shift, self._threshold * spread, self._direction
            )
        if not point.anomaly:
            deviation = value - self.mean_
            context.learned += 1  # type: ignore[attr-defined]
            context.shift_sum += deviation  # type: ignore[attr-defined]
            context.shift_squares += deviation * deviation  # type: ignore[attr-defined]
        return point

    def _peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        # The hot path of a single predict and of every bulk point: _band inlined, with
        # the same operations in the same order (so the same bits as _stream_core).
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        learned = context.learned  # type: ignore[attr-defined]
        if learned == 0:
            return band_point(float(value), self.mean_, self._half_width, self._direction)
        total = self.count_ + learned
        shift = context.shift_sum / total  # type: ignore[attr-defined]
        variance = (self._squares + context.shift_squares) / total - shift * shift  # type: ignore[attr-defined]
        spread = math.sqrt(variance) if variance > 0.0 else 0.0
        return band_point(
            float(value), self.mean_ + shift, self._threshold * spread, self._direction
        )

    def _peek_many(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        # One band for all of them: the context does not move.
        assert isinstance(context, ZScoreContext)
        mean, half = self._band(context.learned, context.shift_sum, context.shift_squares)
        return band_scores(
            values, np.full(values.shape, mean), np.full(values.shape, half), self._direction
        )

    ACROSS = 8
    """How many of a bulk row's leading numbers are :attr:`_across`."""

    @staticmethod
    def observe_across(
        constants: FloatArray,
        contexts: list[ZScoreContext],
        timestamps: FloatArray,
        values: FloatArray,
    ) -> Scores:
        """One point each for many zscore series at once (a bulk request): what
        ``detectors[i].observe_one(contexts[i], timestamps[i], values[i])`` answers for
        every i, the same bits and incident markers, with the arithmetic done in arrays;
        the contexts learn as there. ``constants[i]`` begins with
        ``detectors[i]._across`` (the caller gathers them)."""
        size = len(contexts)
        state = np.fromiter(
            chain.from_iterable([(c.learned, c.shift_sum, c.shift_squares) for c in contexts]),
            np.float64,
            3 * size,
        ).reshape(size, 3)
        mean0, counts, fitted, threshold, half0, codes = constants[:, :6].T
        learned, sums, squares = state.T
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # counts and learned are exact in float64 (below 2**53), so their sum is the
            # integer sum observe_one divides by.
            total = counts + learned
            shift = sums / total
            variance = (fitted + squares) / total - shift * shift
            spread = np.sqrt(np.where(variance > 0.0, variance, 0.0))
            expected = mean0 + shift
            half = threshold * spread
            deviations = (values - mean0).tolist()
        fresh = learned == 0
        expected[fresh] = mean0[fresh]
        half[fresh] = half0[fresh]
        if size and (codes == codes[0]).all():
            scores = band_scores(values, expected, half, _DIRECTIONS[int(codes[0])])
        else:
            directions = [_DIRECTIONS[int(code)] for code in codes.tolist()]
            scores = _by_direction(values, expected, half, directions)
        for context, deviation, flagged in zip(
            contexts, deviations, scores.anomaly.tolist(), strict=True
        ):
            if not flagged:
                context.learned += 1
                context.shift_sum += deviation
                context.shift_squares += deviation * deviation
        codes = np.zeros(size, dtype=np.int8)
        for index in np.flatnonzero(scores.anomaly).tolist():
            codes[index] = contexts[index].incident._mark(
                float(timestamps[index]),
                float(values[index]),
                int(scores.side[index]),
                float(scores.score[index]),
                float(scores.expected[index]),
                float(scores.lower[index]),
                float(scores.upper[index]),
                0.0,  # zscore has no seasonal baseline
                float(constants[index, 6]),
                float(constants[index, 7]),
            )
        return replace(scores, incident=codes)

    def _derive(self) -> None:
        """Constants the hot path reads (each computed as :meth:`_band` computes it)."""
        self._threshold = float(self.params["threshold"])
        self._direction: Direction = self.params["direction"]
        self._half_width = self.params["threshold"] * self.std_
        self._squares = self.count_ * self.std_ * self.std_
        self._across = (
            self.mean_,
            float(self.count_),
            self._squares,
            self._threshold,
            self._half_width,
            float(_DIRECTIONS.index(self._direction)),
            self.cooldown_,
            self.escalation_,
        )
        """What :meth:`observe_across` reads of each detector, as one tuple of floats
        (the direction as its index in :data:`_DIRECTIONS`; :data:`ACROSS` of them)."""

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        """Score the points as :meth:`observe_one` does one by one.

        Which points join the statistics depends on the statistics, so it is found by
        iteration: score every point as if the ones flagged last time (none at first) were
        left out, until the flags stop changing. A flag left out adds nothing to a running
        sum (``x + 0.0`` is ``x``), so the sums are the stream's to the bit, and the fixed
        point is the stream's answer (each round gets at least one more point right). A
        handful of rounds settles a batch; one that does not is finished chunk by chunk
        from the points already known right (:meth:`_chunked`)."""
        assert isinstance(context, ZScoreContext)
        direction = self.params["direction"]
        learned = np.ones(values.size, dtype=np.bool_)
        for _ in range(_ROUNDS):
            mean, half = self._masked_bands(context, values, learned)
            flagged = self._outside(values, mean, half, direction)
            if np.array_equal(flagged, ~learned):
                self._learn(context, values[learned])
                return band_scores(values, mean, half, direction)
            settled = int(np.argmax(flagged == learned))  # first point whose flag changed
            learned = ~flagged
        # Right up to and including ``settled``: keep that, finish the rest in chunks.
        mean, half = self._masked_bands(context, values[: settled + 1], learned[: settled + 1])
        self._learn(context, values[: settled + 1][learned[: settled + 1]])
        rest = self._chunked(context, values[settled + 1 :], direction)
        return band_scores(
            values,
            np.concatenate([mean, rest[0]]),
            np.concatenate([half, rest[1]]),
            direction,
        )

    def _masked_bands(
        self, context: ZScoreContext, values: FloatArray, learned: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, FloatArray]:
        """Each point's (mean, half-width) when exactly the ``learned`` points before it
        joined the statistics: the same operations as :meth:`_band`, element by element."""
        deviations = np.where(learned, values - self.mean_, 0.0)
        sums = np.cumsum(np.concatenate(([context.shift_sum], deviations[:-1])))
        squares = np.cumsum(
            np.concatenate(([context.shift_squares], deviations[:-1] * deviations[:-1]))
        )
        counts = context.learned + np.concatenate(([0], np.cumsum(learned[:-1], dtype=np.int64)))
        total = (self.count_ + counts).astype(np.float64)
        shift = sums / total
        variance = (self.count_ * self.std_ * self.std_ + squares) / total - shift * shift
        spread = np.sqrt(np.where(variance > 0.0, variance, 0.0))
        mean = self.mean_ + shift
        half = self.params["threshold"] * spread
        fresh = counts == 0
        if fresh.any():  # nothing learnt yet: the training statistics exactly
            mean[fresh] = self.mean_
            half[fresh] = self.params["threshold"] * self.std_
        return mean, half

    def _chunked(
        self, context: ZScoreContext, values: FloatArray, direction: str
    ) -> tuple[FloatArray, FloatArray]:
        """(mean, half-width) of each point, a chunk at a time: each chunk scored as if
        every point joined the statistics, which holds up to the first point flagged; the
        rest scored again from there without it; runs of flags point by point."""
        size = values.size
        expected = np.empty(size)
        half_width = np.empty(size)
        position = 0
        chunk_size = _CHUNK
        while position < size:
            end = min(position + chunk_size, size)
            chunk = values[position:end]
            mean, half = self._chunk_bands(context, chunk)
            flagged = self._outside(chunk, mean, half, direction)
            first = int(np.argmax(flagged)) if flagged.any() else chunk.size
            taken = first + 1 if first < chunk.size else chunk.size
            expected[position : position + taken] = mean[:taken]
            half_width[position : position + taken] = half[:taken]
            self._learn(context, chunk[:first])
            position += taken
            chunk_size = (
                min(chunk_size * 2, _MAX_CHUNK) if first == chunk.size else max(2 * taken, _CHUNK)
            )
            if first < _DENSE and position < size:
                stop = min(position + _SCALAR_RUN, size)
                for index in range(position, stop):
                    value = float(values[index])
                    band = self._band(context.learned, context.shift_sum, context.shift_squares)
                    expected[index], half_width[index] = band
                    if not band_point(value, band[0], band[1], direction).anomaly:
                        deviation = value - self.mean_
                        context.learned += 1
                        context.shift_sum += deviation
                        context.shift_squares += deviation * deviation
                position = stop
        return expected, half_width

    @staticmethod
    def _outside(
        values: FloatArray, mean: FloatArray, half: FloatArray, direction: str
    ) -> npt.NDArray[np.bool_]:
        """:func:`band_scores`'s decision alone, with its arithmetic: strictly outside
        ``mean ± half`` on the watched side(s)."""
        flagged: npt.NDArray[np.bool_] = np.zeros(values.shape, dtype=np.bool_)
        if direction in ("both", "upper"):
            flagged |= values > mean + half
        if direction in ("both", "lower"):
            flagged |= values < mean - half
        return flagged

    def _chunk_bands(
        self, context: ZScoreContext, chunk: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Each point's (mean, half-width) if every earlier point of the chunk is learnt:
        the same operations as :meth:`_band`, element by element."""
        deviations = chunk - self.mean_
        sums = np.cumsum(np.concatenate(([context.shift_sum], deviations[:-1])))
        squares = np.cumsum(
            np.concatenate(([context.shift_squares], deviations[:-1] * deviations[:-1]))
        )
        learned = context.learned + np.arange(chunk.size)
        total = (self.count_ + learned).astype(np.float64)
        shift = sums / total
        variance = (self.count_ * self.std_ * self.std_ + squares) / total - shift * shift
        spread = np.sqrt(np.where(variance > 0.0, variance, 0.0))
        mean = self.mean_ + shift
        half = self.params["threshold"] * spread
        fresh = learned == 0
        if fresh.any():  # nothing learnt yet: the training statistics exactly
            mean[fresh] = self.mean_
            half[fresh] = self.params["threshold"] * self.std_
        return mean, half

    def _learn(self, context: ZScoreContext, values: FloatArray) -> None:
        """Add ``values`` to the sums, in order (cumsum adds sequentially, as a stream does)."""
        if values.size == 0:
            return
        deviations = values - self.mean_
        context.shift_sum = float(np.cumsum(np.concatenate(([context.shift_sum], deviations)))[-1])
        context.shift_squares = float(
            np.cumsum(np.concatenate(([context.shift_squares], deviations * deviations)))[-1]
        )
        context.learned += int(values.size)

    def fitted_scores(self, series: Series) -> Scores:
        """The training statistics' band over the training data (nothing learnt twice)."""
        return band_scores(
            series.values,
            np.array(self.mean_),
            np.array(self.params["threshold"] * self.std_),
            self.params["direction"],
        )

    def state(self) -> JsonDict:
        return {"mean": self.mean_, "std": self.std_, "count": self.count_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.mean_ = float(state["mean"])
        self.std_ = float(state["std"])
        # Models stored before streams existed did not record their count; those points
        # weigh as much as the fit's minimum until the model is fitted again.
        self.count_ = int(state.get("count", self.min_points))
        self._derive()


def _by_direction(
    values: FloatArray, expected: FloatArray, half: FloatArray, directions: list[Direction]
) -> Scores:
    """:func:`band_scores` for points whose watched sides differ."""
    chosen = np.asarray(directions)
    parts = {
        direction: band_scores(values, expected, half, direction) for direction in set(directions)
    }

    def pick(field: str) -> npt.NDArray[Any]:
        result = np.array(getattr(parts[directions[0]], field))
        for direction, part in parts.items():
            mask = chosen == direction
            result[mask] = np.asarray(getattr(part, field))[mask]
        return result

    return Scores(
        expected=pick("expected"),
        lower=pick("lower"),
        upper=pick("upper"),
        score=pick("score"),
        anomaly=pick("anomaly"),
        side=pick("side"),
    )
