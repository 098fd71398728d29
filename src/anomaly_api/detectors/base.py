"""The detector interface every detector implements.

A detector is split the way river and ADTK split theirs:

* **parameters** are chosen by the user per fit, validated against a declared
  :class:`Parameter` table (so ``GET /detectors`` and error messages can list them);
* **fitted state** is plain JSON (numbers and lists), produced by :meth:`Detector.state`
  and restored by :meth:`Detector.from_state`; nothing is pickled;
* :meth:`Detector.fit` and :meth:`Detector.score` validate once and then call the
  detector's own maths, ``_fit_core`` and ``_score_core``, which work on whole arrays.

Every detector answers with a :class:`Scores`: per point the expected value, the band
``[lower, upper]``, a graded ``score`` in [0, 1] and the ``anomaly`` decision; the band
arithmetic they share is in :mod:`anomaly_api.detectors.bands`, the parameter tables in
:mod:`anomaly_api.detectors.params`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from anomaly_api.detectors.bands import PointScore, Scores, band_point
from anomaly_api.detectors.params import JsonDict, Parameter
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
