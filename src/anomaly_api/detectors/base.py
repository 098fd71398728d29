"""The detector interface every detector implements, and the shared band arithmetic.

A detector is split the way river and ADTK split theirs:

* **parameters** are chosen by the user per fit, validated against a declared
  :class:`Parameter` table (so ``GET /detectors`` and error messages can list them);
* **fitted state** is plain JSON (numbers and lists), produced by :meth:`Detector.state`
  and restored by :meth:`Detector.from_state`; nothing is pickled;
* :meth:`Detector.fit` and :meth:`Detector.score` validate once and then call the
  detector's own maths, ``_fit_core`` and ``_score_core``, which work on whole arrays.

Every detector answers with a :class:`Scores`: per point the expected value, the band
``[lower, upper]``, a graded ``score`` in [0, 1] and the ``anomaly`` decision. Scores are
comparable across detectors because each is the same function of *how many band
half-widths* the point lies from the expected value (see :func:`band_scores`): 0 at
the expected value, exactly 0.5 on the edge of the band, towards 1 far outside it.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from anomaly_api.detectors.series import FloatArray, Series, finite_values
from anomaly_api.errors import InvalidInput, InvalidParameter

JsonDict = dict[str, Any]
Direction = Literal["both", "upper", "lower"]
DIRECTIONS: tuple[Direction, ...] = ("both", "upper", "lower")
_JUST_ABOVE_HALF = float(np.nextafter(0.5, 1.0))


@dataclass(frozen=True, slots=True)
class Parameter:
    """One user-settable detector parameter: its type, default, range and meaning."""

    name: str
    kind: type
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    """Inclusive upper bound; it also keeps a single request from asking for huge work."""

    def validate(self, detector: str, value: Any) -> Any:
        """Return ``value`` converted to ``kind``, or raise naming the parameter."""
        where = f"params.{self.name}"
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameter(f"{detector}: {self.name} must be a number", field=where)
            try:
                value = float(value)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                raise InvalidParameter(f"{detector}: {self.name} must be finite", field=where)
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParameter(f"{detector}: {self.name} must be an integer", field=where)
        elif not isinstance(value, self.kind):
            raise InvalidParameter(
                f"{detector}: {self.name} must be a {self.kind.__name__}", field=where
            )
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(choice) for choice in self.choices)
            raise InvalidParameter(
                f"{detector}: {self.name} must be one of {allowed}, got {value!r}", field=where
            )
        if self.minimum is not None:
            too_small = value <= self.minimum if self.exclusive_minimum else value < self.minimum
            if too_small:
                relation = "greater than" if self.exclusive_minimum else "at least"
                raise InvalidParameter(
                    f"{detector}: {self.name} must be {relation} {self.minimum}, got {value}",
                    field=where,
                )
        if self.maximum is not None and value > self.maximum:
            raise InvalidParameter(
                f"{detector}: {self.name} must be at most {self.maximum}, got {value}", field=where
            )
        return value

    def describe(self) -> JsonDict:
        """A JSON description for ``GET /detectors`` and the docs."""
        described: JsonDict = {
            "name": self.name,
            "type": {float: "number", int: "integer", str: "string", bool: "boolean"}.get(
                self.kind, self.kind.__name__
            ),
            "default": self.default,
            "description": self.description,
        }
        if self.choices is not None:
            described["choices"] = list(self.choices)
        if self.minimum is not None:
            key = "exclusive_minimum" if self.exclusive_minimum else "minimum"
            described[key] = self.minimum
        if self.maximum is not None:
            described["maximum"] = self.maximum
        return described


THRESHOLD = Parameter(
    "threshold",
    float,
    3.0,
    "How far from the expected value, in the detector's units of spread, a point may lie "
    "before it is anomalous (k in mean ± k·std).",
    minimum=0.0,
    exclusive_minimum=True,
)
DIRECTION = Parameter(
    "direction",
    str,
    "both",
    "Which deviations are anomalies: 'both' sides of the band, only 'upper' (spikes) or "
    "only 'lower' (drops).",
    choices=DIRECTIONS,
)


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-point answers of a detector, as parallel arrays.

    ``lower`` is ``-inf`` and ``upper`` ``+inf`` on a side the detector does not watch
    (``direction="upper"`` or ``"lower"``). ``side`` is +1 where the value lies above
    ``upper``, -1 below ``lower`` and 0 inside the band.
    """

    expected: FloatArray
    lower: FloatArray
    upper: FloatArray
    score: FloatArray
    anomaly: npt.NDArray[np.bool_]
    side: npt.NDArray[np.int8] = field(repr=False)

    def __len__(self) -> int:
        return int(self.score.size)


def consistent_score(score: FloatArray, anomaly: npt.NDArray[np.bool_]) -> FloatArray:
    """``score`` nudged so that ``anomaly == (score > 0.5)`` holds exactly.

    Rounding may put a point a hair outside the band with a deviation of exactly one
    half-width (or inside with a hair more); the decision is what users act on, so the
    score follows it.
    """
    nudged: FloatArray = np.where(
        anomaly, np.maximum(score, _JUST_ABOVE_HALF), np.minimum(score, 0.5)
    )
    return nudged


def band_scores(
    values: FloatArray,
    expected: FloatArray,
    half_width: FloatArray,
    direction: Direction,
) -> Scores:
    """Score ``values`` against the band ``expected ± half_width``.

    The deviation ``d`` is the distance from ``expected`` in half-widths, on the watched
    side(s) only, and ``score = d² / (1 + d²)``: 0 at the expected value, 0.5 on the
    band's edge, 0.8 at twice the half-width, 0.9 at three times. A point is anomalous
    when it lies strictly outside the band (``d > 1``), so ``anomaly == (score > 0.5)``.

    A zero half-width (a constant training series) makes any departure from the
    expected value infinitely unusual: score 1 and anomalous.

    >>> s = band_scores(np.array([10.0, 13.0, 4.0]), np.array([10.0]), np.array([3.0]), "both")
    >>> s.score.tolist(), s.anomaly.tolist(), s.side.tolist()
    ([0.0, 0.5, 0.8], [False, False, True], [0, 0, -1])
    """
    shape = values.shape
    expected = np.asarray(expected, dtype=np.float64)
    half_width = np.asarray(half_width, dtype=np.float64)
    watch_upper = direction in ("both", "upper")
    watch_lower = direction in ("both", "lower")
    # Finite values far apart (1e308 and -1e308) may overflow to inf: that is a deviation
    # beyond any band, which the arithmetic below turns into a score of 1. Large batches
    # are the point of this function, so it avoids temporaries where it can; band_point
    # (one point) mirrors it operation for operation.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        deviation = values - expected
        if watch_upper and watch_lower:
            watched = np.abs(deviation)
        elif watch_upper:
            watched = np.maximum(deviation, 0.0)
        else:
            watched = np.maximum(np.negative(deviation, out=deviation), 0.0)
        if half_width.ndim == 0 and half_width > 0:
            relative = np.divide(watched, half_width, out=watched)
        else:
            relative = np.where(
                half_width > 0, watched / half_width, np.where(watched > 0, np.inf, 0.0)
            )
        # d²/(1+d²) written as 1/(1+(1/d)²), which cannot overflow to inf/inf for huge d.
        score = np.divide(1.0, relative, out=relative)
        np.multiply(score, score, out=score)
        score += 1.0
        np.divide(1.0, score, out=score)
        # A band the same for every point stays a broadcast view: no array is written.
        lower = expected - half_width if watch_lower else np.float64(-np.inf)
        upper = expected + half_width if watch_upper else np.float64(np.inf)
    above = values > upper
    below = values < lower
    anomaly = above | below
    score = consistent_score(score, anomaly)
    side = above.view(np.int8) - below.view(np.int8)
    return Scores(
        expected=np.broadcast_to(expected, shape),
        lower=np.broadcast_to(lower, shape),
        upper=np.broadcast_to(upper, shape),
        score=score,
        anomaly=anomaly,
        side=side,
    )


@dataclass(frozen=True, slots=True)
class PointScore:
    """One point's answer, as plain floats: :class:`Scores` for a single point."""

    expected: float
    lower: float
    upper: float
    score: float
    anomaly: bool
    side: int


def band_point(value: float, expected: float, half_width: float, direction: str) -> PointScore:
    """:func:`band_scores` for one point, in plain float arithmetic (no arrays).

    A single predict is the service's hot path; numpy's per-call overhead on arrays of
    one element costs more than the arithmetic. This mirrors :func:`band_scores`
    operation for operation, so both give the same bits (``tests/detectors`` checks).

    >>> band_point(13.0, 10.0, 3.0, "both"), band_point(4.0, 10.0, 3.0, "both").side
    (PointScore(expected=10.0, lower=7.0, upper=13.0, score=0.5, anomaly=False, side=0), -1)
    """
    watch_upper = direction in ("both", "upper")
    watch_lower = direction in ("both", "lower")
    deviation = value - expected  # may overflow to inf, as in band_scores
    watched = 0.0
    if watch_upper and deviation > 0:
        watched = deviation
    if watch_lower and deviation < 0:
        watched = -deviation
    # A zero-width band (a constant training series): any departure is infinitely far.
    relative = watched / half_width if half_width > 0 else (math.inf if watched > 0 else 0.0)
    if relative == 0:
        score = 0.0
    else:
        inverse = 1.0 / relative
        score = 1.0 / (1.0 + inverse * inverse)
    lower = expected - half_width if watch_lower else -math.inf
    upper = expected + half_width if watch_upper else math.inf
    side = 1 if value > upper else -1 if value < lower else 0
    anomaly = side != 0
    score = max(score, _JUST_ABOVE_HALF) if anomaly else min(score, 0.5)
    return PointScore(expected, lower, upper, score, anomaly, side)


_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal sample -> its sigma
_MEANAD_TO_SIGMA = 1.2533141373155003  # sqrt(pi / 2): mean absolute deviation -> sigma


def robust_scale(values: FloatArray, center: float | None = None) -> float:
    """A spread estimate that a few outliers cannot inflate: the scaled MAD.

    When more than half the values are identical (a counter that is mostly 0) the MAD
    is 0 even though the series varies; then the scaled *mean* absolute deviation is
    used, as Iglewicz and Hoaglin's modified z-score does. 0 only for a constant series.

    >>> robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    1.482602218505602
    >>> round(robust_scale(np.array([0.0, 0.0, 0.0, 0.0, 5.0])), 4)
    1.2533
    """
    if values.size == 0:
        return 0.0
    middle = float(np.median(values)) if center is None else center
    deviations = np.abs(values - middle)
    mad = float(np.median(deviations))
    if mad > 0:
        return mad * _MAD_TO_SIGMA
    return float(deviations.mean()) * _MEANAD_TO_SIGMA


def _all_finite(state: Any) -> bool:
    """Whether every number in a JSON-like state is finite."""
    if isinstance(state, float):
        return math.isfinite(state)
    if isinstance(state, dict):
        return all(_all_finite(item) for item in state.values())
    if isinstance(state, list | tuple):
        return all(_all_finite(item) for item in state)
    return True


class Detector(abc.ABC):
    """Base class of every detector: validated parameters, JSON state, array scoring.

    Subclasses declare ``name``, ``description``, ``min_points`` and ``parameters`` and
    implement ``_fit_core``, ``_score_core``, ``state`` and ``_restore``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    min_points: ClassVar[int]
    parameters: ClassVar[tuple[Parameter, ...]]
    fixed_band_in_time: ClassVar[bool] = False
    """True when :meth:`_point_band` is the same at every timestamp (zscore, robust)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: JsonDict = self.validate_params(params or {})
        self.fitted_ = False

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> JsonDict:
        """Defaults filled in, every value checked; unknown names are an error listing the known."""
        known = {parameter.name: parameter for parameter in cls.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            valid = ", ".join(known) or "none"
            raise InvalidParameter(
                f"{cls.name}: unknown parameter(s) {', '.join(unknown)}; valid: {valid}",
                field=f"params.{unknown[0]}",
            )
        return {
            name: parameter.validate(cls.name, params[name])
            if name in params
            else parameter.default
            for name, parameter in known.items()
        }

    @classmethod
    def describe(cls) -> JsonDict:
        """Name, description, minimum points and parameters, for ``GET /detectors``."""
        return {
            "name": cls.name,
            "description": cls.description,
            "min_points": cls.min_points,
            "parameters": [parameter.describe() for parameter in cls.parameters],
        }

    def fit(self, series: Series) -> Self:
        """Learn from ``series``; raise :class:`InvalidInput` when it has too few points."""
        if len(series) < self.min_points:
            raise InvalidInput(
                f"{self.name} needs at least {self.min_points} points to fit, got {len(series)}",
                field="values",
            )
        # Values near the float limit overflow in sums; the check below turns that into a
        # clear error instead of a model full of NaN.
        with np.errstate(over="ignore", invalid="ignore"):
            self._fit_core(series)
        if not _all_finite(self.state()):
            raise InvalidInput(
                f"{self.name} cannot model these values: they are so large that their mean or "
                "spread overflows floating point",
                field="values",
            )
        self.fitted_ = True
        return self

    def score(self, timestamps: npt.ArrayLike, values: npt.ArrayLike) -> Scores:
        """Score points (one point is an array of one) against the fitted model."""
        if not self.fitted_:
            raise RuntimeError(f"{self.name} detector used before fit")
        value_array = finite_values(values, field="value")
        timestamp_array = np.asarray(timestamps, dtype=np.float64)
        if timestamp_array.shape != value_array.shape:
            raise InvalidInput(
                f"timestamps has {timestamp_array.size} items but values has {value_array.size}",
                field="timestamps",
            )
        return self._score_core(timestamp_array, value_array)

    def score_point(self, timestamp: float, value: float) -> PointScore:
        """Score one point: what :meth:`score` answers for arrays of one, but faster
        for detectors whose band is a closed form (see :meth:`_point_band`)."""
        if not self.fitted_:
            raise RuntimeError(f"{self.name} detector used before fit")
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        band = self._point_band(float(timestamp))
        if band is not None:
            return band_point(float(value), band[0], band[1], self.params["direction"])
        scores = self.score([timestamp], [value])
        return PointScore(
            float(scores.expected[0]),
            float(scores.lower[0]),
            float(scores.upper[0]),
            float(scores.score[0]),
            bool(scores.anomaly[0]),
            int(scores.side[0]),
        )

    def fixed_band(self) -> tuple[float, float] | None:
        """``(expected, half_width)`` when the band is the same at every time, else None.

        A cache can keep these two numbers beside the model and score a point with
        :func:`band_point` alone: the same bits as :meth:`score_point`, without reading
        the detector's attributes (which, at 10^5 cached models, are cache misses)."""
        if not (self.fixed_band_in_time and self.fitted_):
            return None
        return self._point_band(0.0)

    def _point_band(self, timestamp: float) -> tuple[float, float] | None:
        """``(expected, half_width)`` at ``timestamp`` for detectors that score with
        :func:`band_scores` on a band that does not depend on other points; None (the
        default) makes :meth:`score_point` use :meth:`score`."""
        return None

    def fitted_scores(self, series: Series) -> Scores:
        """How the fitted model judges its own training data (what a plot shows).

        Detectors that score a batch as the continuation of their training data
        override this to start from the beginning of ``series`` instead of its end.
        """
        return self.score(series.timestamps, series.values)

    @abc.abstractmethod
    def _fit_core(self, series: Series) -> None:
        """Compute the fitted state from validated data."""

    @abc.abstractmethod
    def _score_core(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        """Score validated, finite arrays."""

    @abc.abstractmethod
    def state(self) -> JsonDict:
        """The fitted state as JSON-able data (numbers and lists only)."""

    @abc.abstractmethod
    def _restore(self, state: Mapping[str, Any]) -> None:
        """Set the fitted attributes from :meth:`state` output."""

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: Mapping[str, Any]) -> Self:
        """Rebuild a fitted detector from stored parameters and state."""
        detector = cls(params)
        detector._restore(state)
        detector.fitted_ = True
        return detector
