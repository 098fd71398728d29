"""The detector interface every detector implements.

A detector is split the way river and ADTK split theirs:

* **parameters** are chosen by the user per fit, validated against a declared
  :class:`Parameter` table (so ``GET /detectors`` and error messages can list them);
* **fitted state** is plain JSON (numbers and lists), produced by :meth:`Detector.state`
  and restored by :meth:`Detector.from_state`; nothing is pickled;
* the **rolling context** is what scoring the next point of a stream needs to know of
  the points before it (hampel's last few values, zscore's running sums): per series,
  updated point by point, and JSON too (:class:`Context`). A fit computes the context
  at the end of its training data (:meth:`Detector.initial_context`); a stream then
  goes on from there, in the spirit of river's ``learn_one``/``score_one``:
  :meth:`Detector.observe_one` scores one point and learns it,
  :meth:`Detector.score_stream` does the same for many points at numpy speed, and both
  give the same answers (the detector contract suite checks it for every detector);
* :meth:`Detector.fit` and :meth:`Detector.score_stream` validate once and then call the
  detector's own maths, ``_fit_core`` and ``_stream_core``, which work on whole arrays.

Every detector answers with a :class:`Scores`: per point the expected value, the band
``[lower, upper]``, a graded ``score`` in [0, 1] and the ``anomaly`` decision; the band
arithmetic they share is in :mod:`anomaly_api.detectors.bands`, the parameter tables in
:mod:`anomaly_api.detectors.params`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from anomaly_api.detectors import incidents
from anomaly_api.detectors.bands import PointScore, Scores
from anomaly_api.detectors.incidents import Incident
from anomaly_api.detectors.params import INCIDENT_PARAMETERS, JsonDict, Parameter
from anomaly_api.detectors.series import FloatArray, Series, finite_values
from anomaly_api.errors import InvalidInput, InvalidParameter


def _all_finite(state: Any) -> bool:
    """Whether every number in a JSON-like state is finite."""
    if isinstance(state, float):
        return math.isfinite(state)
    if isinstance(state, dict):
        return all(_all_finite(item) for item in state.values())
    if isinstance(state, list | tuple):
        return all(_all_finite(item) for item in state)
    return True


class Context(abc.ABC):
    """A detector's rolling context: what scoring the next point needs to know of the
    points before it. Plain data, JSON in and out (:meth:`to_json`, :meth:`from_json`);
    scoring a point through :meth:`Detector.observe_one` updates it in place.

    Every context also holds the series' open :class:`~anomaly_api.detectors.incidents.Incident`
    (``incident``), which the base class keeps: :meth:`dump` and
    :meth:`Detector.load_context` add it to the detector's own JSON, :meth:`copy` copies
    it. Subclasses call ``super().__init__()``."""

    __slots__ = ("incident",)

    def __init__(self) -> None:
        self.incident = Incident()

    @abc.abstractmethod
    def to_json(self) -> JsonDict:
        """The detector's part of the context as JSON-able data (numbers and lists only)."""

    @classmethod
    @abc.abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a context from :meth:`to_json` output (no incident open)."""

    def dump(self) -> JsonDict:
        """All of the context as JSON: :meth:`to_json` and the open incident."""
        data = self.to_json()
        incident = self.incident.to_json()
        if incident is not None:
            data["incident"] = incident
        return data

    def _copy(self) -> Self:
        """An independent copy of the detector's part (subclasses do it faster)."""
        return self.from_json(self.to_json())

    def copy(self) -> Self:
        """An independent copy (scoring it leaves this one alone)."""
        clone = self._copy()
        clone.incident = self.incident.copy()
        return clone


class NoContext(Context):
    """The context of detectors whose fitted parameters are all they need (robust,
    seasonal): they learn from a stream only by being fitted again (the open incident
    is all they keep)."""

    __slots__ = ()

    def to_json(self) -> JsonDict:
        return {}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NoContext:
        return cls()

    def _copy(self) -> NoContext:
        return NoContext()


def point_of(scores: Scores, index: int = 0) -> PointScore:
    """One point of ``scores`` as plain floats."""
    return PointScore(
        float(scores.expected[index]),
        float(scores.lower[index]),
        float(scores.upper[index]),
        float(scores.score[index]),
        bool(scores.anomaly[index]),
        int(scores.side[index]),
        0 if scores.incident is None else int(scores.incident[index]),
    )


class Detector(abc.ABC):
    """Base class of every detector: validated parameters, JSON state, a rolling context,
    array scoring.

    Subclasses declare ``name``, ``description``, ``min_points``, ``parameters`` and,
    when they learn from a stream, ``context_type``; they implement ``_fit_core``,
    ``_stream_core``, ``state`` and ``_restore`` (and ``initial_context`` when they have
    a context). :meth:`observe_one` and :meth:`peek_one` have array-of-one defaults,
    which detectors whose band is a closed form override with float arithmetic (the
    same bits; tested).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    min_points: ClassVar[int]
    parameters: ClassVar[tuple[Parameter, ...]]
    context_type: ClassVar[type[Context]] = NoContext
    learns: ClassVar[str] = "only when fitted again (its parameters are all it needs)"
    """How the detector learns from a stream, in words (``GET /detectors``)."""
    cooldown_default: ClassVar[int] = 86_400
    """The detector's default ``cooldown_seconds`` (chosen by cross-validation:
    ``benchmarks/cross_validate.py``)."""
    fit_cost_us: ClassVar[float] = 1.0
    """Estimated microseconds of one core that fitting costs per training point."""
    score_cost_us: ClassVar[float] = 1.0
    """Estimated microseconds of one core that scoring costs per point, in a batch.

    Both are measured on the project's 2-core test machine and rounded up
    (``benchmarks/work_costs.py`` prints them against what it measures): they are what
    the service's per-request work budget (``ANOMALY_MAX_REQUEST_WORK_S``) is checked
    against before any work starts, not promises."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: JsonDict = self.validate_params(params or {})
        self.fitted_ = False
        self.cooldown_ = float(self.params["cooldown_seconds"])
        self.escalation_ = float(self.params["escalation"])

    @classmethod
    def all_parameters(cls) -> tuple[Parameter, ...]:
        """The detector's own parameters, then those of the incident rules every
        detector takes (:data:`~anomaly_api.detectors.params.INCIDENT_PARAMETERS`)."""
        cooldown, *rest = INCIDENT_PARAMETERS
        return (*cls.parameters, replace(cooldown, default=cls.cooldown_default), *rest)

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> JsonDict:
        """Defaults filled in, every value checked; unknown names are an error listing the known."""
        known = {parameter.name: parameter for parameter in cls.all_parameters()}
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

    stream_cost_us: ClassVar[float] = 40.0
    """Estimated microseconds of one core per point scored one after another on the live
    path (a batch predict), on top of :attr:`score_cost_us`: the stream's bookkeeping
    (history, incidents, retrain checks). Measured 7 to 27 us a point (cusum: 61)."""

    @classmethod
    def work_s(cls, params: Mapping[str, Any], fit_points: int, score_points: int) -> float:
        """Estimated CPU seconds to fit on ``fit_points`` points and score
        ``score_points`` with ``params`` (validated: defaults filled in)."""
        return (fit_points * cls.fit_cost_us + score_points * cls.score_cost_us) / 1e6

    @classmethod
    def stream_work_s(cls, params: Mapping[str, Any], points: int) -> float:
        """Estimated CPU seconds to score ``points`` one after another on the live path."""
        return cls.work_s(params, 0, points) + points * cls.stream_cost_us / 1e6

    @classmethod
    def describe(cls) -> JsonDict:
        """Name, description, minimum points and parameters, for ``GET /detectors``."""
        return {
            "name": cls.name,
            "description": cls.description,
            "min_points": cls.min_points,
            "parameters": [parameter.describe() for parameter in cls.all_parameters()],
            "learns": cls.learns,
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

    # -- the stream ----------------------------------------------------------------------

    def initial_context(self) -> Context:
        """A new context as it stands at the end of the training data."""
        return self.context_type.from_json({})

    def load_context(self, data: Mapping[str, Any]) -> Context:
        """A context from its JSON form (:meth:`Context.dump`)."""
        context = self.context_type.from_json(data)
        context.incident = Incident.from_json(data.get("incident"))
        return context

    def score_stream(
        self, context: Context, timestamps: npt.ArrayLike, values: npt.ArrayLike
    ) -> Scores:
        """Score points in order as the continuation of ``context``, which learns each
        of them as the detector's rule says (and is updated in place)."""
        if not self.fitted_:
            raise RuntimeError(f"{self.name} detector used before fit")
        value_array = finite_values(values, field="value")
        timestamp_array = np.asarray(timestamps, dtype=np.float64)
        if timestamp_array.shape != value_array.shape:
            raise InvalidInput(
                f"timestamps has {timestamp_array.size} items but values has {value_array.size}",
                field="timestamps",
            )
        with np.errstate(over="ignore", invalid="ignore"):
            scores = self._stream_core(context, timestamp_array, value_array)
        return replace(
            scores,
            incident=incidents.mark(
                context.incident,
                timestamp_array,
                value_array,
                scores,
                self.baseline_at,
                self.cooldown_,
                self.escalation_,
            ),
        )

    def observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        """Score one point as the continuation of ``context`` and learn it: what
        :meth:`score_stream` answers for arrays of one, incident marker included."""
        point = self._observe_one(context, timestamp, value)
        if point.anomaly:
            point.incident = context.incident.mark(
                timestamp,
                value,
                point,
                self.baseline_at(timestamp),
                self.cooldown_,
                self.escalation_,
            )
        return point

    def peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        """Score one point against ``context`` without learning it (a what-if, or a point
        older than the stream); its incident marker is what it would be."""
        point = self._peek_one(context, timestamp, value)
        if point.anomaly:
            point.incident = context.incident.classify(
                timestamp,
                value,
                point,
                self.baseline_at(timestamp),
                self.cooldown_,
                self.escalation_,
            )
        return point

    def baseline_at(self, timestamp: float) -> float:
        """The seasonal part of the expected value at ``timestamp``: what the expected
        value would be there were the level what it is at the profile's reference (0 for
        detectors without a seasonal profile). The incident rules use it to compare a
        point with what was normal when an incident began, at the same time of day."""
        return 0.0

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        """:meth:`observe_one` without the incident marker: arrays of one by default;
        detectors whose band is a closed form override it with float arithmetic."""
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        if not self.fitted_:
            raise RuntimeError(f"{self.name} detector used before fit")
        with np.errstate(over="ignore", invalid="ignore"):
            scores = self._stream_core(
                context, np.array([float(timestamp)]), np.array([float(value)])
            )
        return point_of(scores)

    def _peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        """:meth:`peek_one` without the incident marker."""
        return self._observe_one(context.copy(), timestamp, value)

    def peek_many(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        """Score each point against ``context`` as :meth:`peek_one` would, none learning
        nor seeing the others (points older than the stream, a repeated batch). Finite
        float arrays of one size. Detectors without a context learn nothing anyway, so
        their batch scoring is the answer; others go point by point unless they
        override this with arrays (the same bits; tested)."""
        if self.context_type is NoContext:
            with np.errstate(over="ignore", invalid="ignore"):
                scores = self._stream_core(context, timestamps, values)
        else:
            scores = self._peek_many(context, timestamps, values)
        return replace(
            scores,
            incident=incidents.classify_each(
                context.incident,
                timestamps,
                values,
                scores,
                self.baseline_at,
                self.cooldown_,
                self.escalation_,
            ),
        )

    def _peek_many(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        """:meth:`peek_many` without the markers, point by point unless overridden."""
        points = [
            self._peek_one(context, timestamp, value)
            for timestamp, value in zip(timestamps.tolist(), values.tolist(), strict=True)
        ]
        return Scores(
            expected=np.array([point.expected for point in points], dtype=np.float64),
            lower=np.array([point.lower for point in points], dtype=np.float64),
            upper=np.array([point.upper for point in points], dtype=np.float64),
            score=np.array([point.score for point in points], dtype=np.float64),
            anomaly=np.array([point.anomaly for point in points], dtype=np.bool_),
            side=np.array([point.side for point in points], dtype=np.int8),
        )

    def context_after(self, timestamps: npt.ArrayLike, values: npt.ArrayLike) -> Context:
        """The context after the points that followed the training data."""
        context = self.initial_context()
        if np.asarray(values).size:
            self.score_stream(context, timestamps, values)
        return context

    # -- scoring without a stream ---------------------------------------------------------

    def score(self, timestamps: npt.ArrayLike, values: npt.ArrayLike) -> Scores:
        """Score points (one point is an array of one) as the continuation of the
        training data; nothing is remembered."""
        return self.score_stream(self.initial_context(), timestamps, values)

    def score_point(self, timestamp: float, value: float) -> PointScore:
        """Score one point right after the training data: :meth:`score` for one point."""
        if not self.fitted_:
            raise RuntimeError(f"{self.name} detector used before fit")
        return self.peek_one(self.initial_context(), timestamp, value)

    def fitted_scores(self, series: Series) -> Scores:
        """How the fitted model judges its own training data (what a plot shows).

        Detectors that score a batch as the continuation of their training data
        override this to start from the beginning of ``series`` instead of its end.
        """
        return self.score(series.timestamps, series.values)

    @abc.abstractmethod
    def _fit_core(self, series: Series) -> None:
        """Compute the fitted state (and the context at the end of ``series``)."""

    @abc.abstractmethod
    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        """Score validated, finite arrays as the continuation of ``context``, updating it."""

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
