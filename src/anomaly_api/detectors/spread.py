"""``spread``: the series moves more, or less, than it used to: variance shifts, a
changed density of spikes, a stuck sensor."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from anomaly_api.detectors.bands import (
    ROUNDING,
    PointScore,
    Scores,
    decided_score,
    scores_of,
    side_units,
    sided_distance,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import (
    DIRECTIONS,
    MAX_THRESHOLD,
    JsonDict,
    Parameter,
)
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

_LARGEST = sys.float_info.max


class SpreadContext(Context):
    """The latest value and the sizes of the last ``window`` steps (oldest first)."""

    __slots__ = ("last", "steps")

    def __init__(self, last: float = math.nan, steps: list[float] | None = None) -> None:
        super().__init__()
        self.last = last
        self.steps = [] if steps is None else steps

    def to_json(self) -> JsonDict:
        return {"last": self.last if math.isfinite(self.last) else None, "steps": self.steps}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        last = data.get("last")
        steps = data.get("steps")
        try:
            last_value = math.nan if last is None else float(last)
            step_values = [float(step) for step in steps] if isinstance(steps, list) else []
        except (TypeError, ValueError):
            return cls()
        if not all(math.isfinite(step) and step >= 0.0 for step in step_values):
            step_values = []
        return cls(last_value, step_values)

    def _copy(self) -> Self:
        return type(self)(self.last, list(self.steps))


class SpreadDetector(Detector):
    """How much the series moves, against how much it moved in training: the mean size
    of its last ``window`` steps (``|x[t] - x[t-1]|``).

    Band detectors judge each point's *level*; this one judges the series' *activity*,
    which is what changes when a noisy sensor goes quiet or stuck, when a quiet metric
    starts to swing, or when spikes that used to come once an hour come every few
    minutes (a changed density of events: a load balancer's bursts, a user holding a
    key). Steps ignore the level, so a slow trend or a daily cycle is no change. The
    mean of the steps over a window is the classical estimate of scale behind
    variance-change tests (Inclán & Tiao 1994 test the cumulative sums of squares;
    the mean absolute step is the robust mean successive difference of von Neumann et
    al. 1941). For a series of rare spikes (mostly 0, a burst now and then) it counts
    the spikes in the window, so it is a density too.

    **Calibration.** The mean step is computed for every window of the training data;
    its median is the expected activity, and the ``quantile`` (99th percentile) of the
    windows' rises above it, and of their falls below it, are the units of each side
    (each at least the windows' robust sigma): a spread whose normal rises are larger
    than its falls (bursts) gets a wider margin above than below.
    ``score`` is ``d² / (1 + d²)`` of the window's distance ``d`` from the median in
    ``threshold`` units: ``score > 0.5`` means *more (or less) activity than all but 1%
    of the training windows showed, by* ``threshold`` *times that margin*. A series
    whose training had long flat stretches learns that stillness is normal. The price
    of learning from windows: one burst in training lies in ``window`` of them, so a
    training incident that is more than 1% of the windows widens the upper margin to
    its size (fit on data without it, or set a lower ``quantile``).

    The band is the values this point could take without an alarm: the previous value
    (``expected``) plus or minus the largest step that keeps the window's activity
    below its upper limit. A window too still is flagged whatever the point (inside the
    band: ``side`` 0). Points are taken in order, their timestamps are not used.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> values = 20 + rng.normal(0, 1, 900)
    >>> values[700:750] = 20 + rng.normal(0, 3, 50)  # the noise triples for 50 points
    >>> values[800:] = values[799]  # then the sensor sticks
    >>> times = np.arange(900) * 300
    >>> detector = SpreadDetector().fit(Series.from_arrays(times[:500], values[:500]))
    >>> scores = detector.score(times[500:], values[500:])
    >>> (np.flatnonzero(scores.incident == 1) + 500).tolist()  # the alerts
    [703, 723, 724, 811]
    """

    name: ClassVar[str] = "spread"
    fit_cost_us: ClassVar[float] = 0.2
    score_cost_us: ClassVar[float] = 5.0
    description: ClassVar[str] = (
        "The mean size of the last steps against the training's: variance shifts, a "
        "changed density of spikes, stuck sensors."
    )
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = SpreadContext
    learns: ClassVar[str] = (
        "every point enters the window of recent steps; the expected activity and its "
        "units change when it is fitted again"
    )
    cooldown_default: ClassVar[int] = 4 * 3600  # cross-validated (docs/detection.md)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "threshold",
            float,
            1.5,
            "How far the window's mean step may lie from the training windows' median, in "
            "calibrated units (the 99th percentile of their rises above it, or of their "
            "falls below it).",
            minimum=0.0,
            exclusive_minimum=True,
            maximum=MAX_THRESHOLD,
        ),
        Parameter(
            "window",
            int,
            16,
            "How many of the latest steps make the activity judged at each point (at "
            "most half the training series' steps: a shorter series uses that). On noisy "
            "data, stillness can only be told from chance with 8 steps or more.",
            minimum=2,
            maximum=1000,
        ),
        Parameter(
            "direction",
            str,
            "both",
            "Which changes are anomalies: 'both', only 'upper' (more activity: the "
            "variance up, denser spikes) or only 'lower' (less: quieter, stuck).",
            choices=DIRECTIONS,
        ),
        Parameter(
            "quantile",
            float,
            0.99,
            "Quantile of the training windows' rises (and falls) of activity that is one "
            "unit on each side.",
            minimum=0.5,
            maximum=0.9999,
        ),
    )

    center_: float
    unit_high_: float
    unit_low_: float
    window_: int
    last_: float
    steps_: list[float]

    def _fit_core(self, series: Series) -> None:
        values = series.values
        # Two windows at least, so that the calibration sees more than one.
        window = min(int(self.params["window"]), (values.size - 1) // 2)
        self.window_ = window
        steps = np.minimum(np.abs(np.diff(values)), _LARGEST)
        # Each window summed on its own (a running total would lose the small steps
        # after one huge one).
        activity = np.convolve(steps / window, np.ones(window), mode="valid")
        self.center_ = float(np.median(activity))
        residuals = activity - self.center_
        # Steps all alike (a ramp) have one activity; rounding must not become a unit.
        floor = ROUNDING * self.center_
        self.unit_high_, self.unit_low_ = side_units(
            residuals, float(self.params["quantile"]), floor
        )
        self.last_ = float(values[-1])
        self.steps_ = steps[-window:].tolist()
        self._derive()

    def _derive(self) -> None:
        threshold = float(self.params["threshold"])
        self._window = self.window_
        direction = self.params["direction"]
        self._watch_upper = direction != "lower"
        self._watch_lower = direction != "upper"
        self._high = threshold * self.unit_high_
        self._low = threshold * self.unit_low_
        # The window's mean step beyond which (or below which) it is an alarm.
        self._most = self.center_ + self._high if direction != "lower" else math.inf
        self._least = self.center_ - self._low if direction != "upper" else -math.inf

    def initial_context(self) -> SpreadContext:
        return SpreadContext(self.last_, list(self.steps_))

    def _step(self, context: SpreadContext, value: float) -> PointScore:
        """One point: its step enters the window, the oldest leaves; the band, the
        decision and the score."""
        last = context.last
        if not math.isfinite(last):  # the first point of a plot of the training data
            context.last = value
            return PointScore(value, value, value, 0.0, False, 0)
        steps = context.steps
        if len(steps) >= self._window:
            del steps[: len(steps) - self._window + 1]
        others = sum(steps)
        count = len(steps) + 1
        step = min(abs(value - last), _LARGEST)  # finite, so the context stays JSON
        mean_step = (others + step) / count
        room = self._most * count - others
        room = room if room > 0.0 else 0.0
        upper = min(last + room, _LARGEST) if self._watch_upper else math.inf
        lower = max(last - room, -_LARGEST) if self._watch_upper else -math.inf
        rise = mean_step - self.center_
        anomaly = mean_step > self._most or mean_step < self._least
        distance = sided_distance(rise, self._high, self._low, self._watch_upper, self._watch_lower)
        score = decided_score(distance, anomaly)
        side = 0
        if anomaly:
            side = 1 if value > upper else -1 if value < lower else 0
        steps.append(step)
        context.last = value
        return PointScore(last, lower, upper, score, anomaly, side)

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        assert isinstance(context, SpreadContext)
        points = [self._step(context, value) for value in values.tolist()]
        return scores_of(points)

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, SpreadContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        return self._step(context, float(value))

    def fitted_scores(self, series: Series) -> Scores:
        return self.score_stream(SpreadContext(), series.timestamps, series.values)

    def state(self) -> JsonDict:
        return {
            "center": self.center_,
            "unit_high": self.unit_high_,
            "unit_low": self.unit_low_,
            "window": self.window_,
            "last": self.last_,
            "steps": self.steps_,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.center_ = float(state["center"])
        self.unit_high_ = float(state["unit_high"])
        self.unit_low_ = float(state["unit_low"])
        self.window_ = int(state["window"])
        self.last_ = float(state["last"])
        self.steps_ = [float(step) for step in state["steps"]]
        self._derive()
