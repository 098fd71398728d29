"""One alert per incident, kept apart from the band: which anomalous points open an incident.

A detector's band says what the model expects; every point outside it is ``anomaly:
true``, however many come in a row. Paging a person for each of them would bury the
one alert that matters, so each answer also says whether its point **opens** an
incident (``new``), belongs to one already open (``ongoing``) or is not anomalous
(None). The rules, the same for a single predict, a batch and a bulk request:

* an anomalous point opens a **new** incident when no incident is open: none began, or
  the last anomalous point lies more than ``cooldown_seconds`` before it (a quiet gap
  closes an incident);
* it is also **new** when it is of another kind than the open incident: on the other
  side of the band *and* beyond the band the series had when the incident began, at
  the same point of its seasonal cycle (a spike after a dip). The series coming back is
  not new: after a long dip the band has followed the level down, so the return to the
  old level lies above it, but not above the band of before the dip. A point flagged
  while inside the band (a sustained change, side 0) is of no particular side: it
  joins the open incident, and an incident it opened takes the side of its first point
  beyond the band;
* and when it is markedly worse: its distance from the expected value, in band
  half-widths, exceeds ``escalation`` times the largest of the open incident (0: never);
* otherwise it is **ongoing**, and keeps the incident open.

Nothing here changes a band, a score or the ``anomaly`` flag: de-duplication is only
this marker. It follows the alert grouping of operations tools (an incident stays open
while its alerts keep firing and resolves after a quiet period, as Prometheus
Alertmanager's ``group_interval`` and PagerDuty's alert grouping do), and it is what the
NAB scoring rewards: the first detection in a window counts, later ones in the window
add nothing and each one after it is a false positive (Lavin & Ahmad 2015).

The state is six numbers per series (:class:`Incident`), kept in the detector's
context, so it survives restarts and moves with the stream like the rest of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from anomaly_api.detectors.bands import PointScore, Scores
from anomaly_api.detectors.series import FloatArray

NONE, NEW, ONGOING = 0, 1, 2
"""The marker's codes, as :class:`Incident` and :class:`~anomaly_api.detectors.bands.Scores`
hold them."""
_ANY_SIDE = 2
"""The side of an incident opened inside the band (a sustained change), until a point
of it lies beyond one edge."""
NAMES: tuple[str | None, str | None, str | None] = (None, "new", "ongoing")
"""The marker on the wire, by code."""


def half_widths(score: float) -> float:
    """How far a point lies from the expected value, in band half-widths, read back from
    its score (every detector's score is ``d² / (1 + d²)`` of that distance ``d``)."""
    if score >= 1.0:
        return math.inf
    if score <= 0.0:
        return 0.0
    return math.sqrt(score / (1.0 - score))


class Incident:
    """The open incident of a series: its side (+1 above the band, -1 below, 2 not yet
    known, 0 when none ever began), the time of its latest anomalous point, the largest
    distance of its points (in band half-widths), and what was normal when it began:
    the expected value less the detector's seasonal baseline (``level``) and the band's
    reach below and above it."""

    __slots__ = ("above", "below", "last", "level", "peak", "side")

    def __init__(
        self,
        side: int = 0,
        last: float = -math.inf,
        peak: float = 0.0,
        level: float = 0.0,
        below: float = math.inf,
        above: float = math.inf,
    ) -> None:
        self.side = side
        self.last = last
        self.peak = peak
        self.level = level
        self.below = below
        self.above = above

    def _fields(self) -> tuple[float, ...]:
        return (self.side, self.last, self.peak, self.level, self.below, self.above)

    def to_json(self) -> list[float | None] | None:
        """``[side, last, peak, level, below, above]`` (infinities as None), or None
        when none ever began."""
        if self.side == 0:
            return None
        return [item if math.isfinite(item) else None for item in self._fields()]

    @classmethod
    def from_json(cls, data: Any) -> Incident:
        """Rebuild from :meth:`to_json` output; anything else (None, an older context
        without the key) is no incident."""
        if not isinstance(data, Sequence) or len(data) != 6:
            return cls()
        defaults = (0.0, math.nan, math.inf, 0.0, math.inf, math.inf)
        try:
            side, last, peak, level, below, above = (
                default if item is None else float(item)
                for item, default in zip(data, defaults, strict=True)
            )
        except (TypeError, ValueError):
            return cls()
        if side not in (1.0, -1.0, float(_ANY_SIDE)) or not math.isfinite(last):
            return cls()
        return cls(int(side), last, peak, level, below, above)

    def copy(self) -> Incident:
        return Incident(self.side, self.last, self.peak, self.level, self.below, self.above)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Incident) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return "Incident(side={}, last={}, peak={}, level={}, below={}, above={})".format(
            *self._fields()
        )

    def classify(
        self,
        timestamp: float,
        value: float,
        point: PointScore,
        baseline: float,
        cooldown: float,
        escalation: float,
    ) -> int:
        """:data:`NEW` or :data:`ONGOING` for an anomalous ``point`` of ``value``,
        without learning it; ``baseline`` is the detector's seasonal baseline at its
        time (:meth:`~anomaly_api.detectors.base.Detector.baseline_at`)."""
        return self._classify(
            timestamp, value, point.side, point.score, baseline, cooldown, escalation
        )

    def _classify(
        self,
        timestamp: float,
        value: float,
        side: int,
        score: float,
        baseline: float,
        cooldown: float,
        escalation: float,
    ) -> int:
        if self.side == 0 or timestamp - self.last > cooldown:
            return NEW
        # The other side of the band: a new kind of incident when the value is beyond
        # what was normal when this one began (at this time of day); else the series
        # coming back (after a dip, the return to the old level lies above the band
        # that has followed it down, but not above the band of before).
        if side != 0 and self.side != _ANY_SIDE and side != self.side:
            normal = baseline + self.level
            if value > normal + self.above if side > 0 else value < normal - self.below:
                return NEW
        if escalation > 0.0 and half_widths(score) > escalation * self.peak:
            return NEW
        return ONGOING

    def mark(
        self,
        timestamp: float,
        value: float,
        point: PointScore,
        baseline: float,
        cooldown: float,
        escalation: float,
    ) -> int:
        """:meth:`classify` an anomalous point, then learn it."""
        return self._mark(
            timestamp,
            value,
            point.side,
            point.score,
            point.expected,
            point.lower,
            point.upper,
            baseline,
            cooldown,
            escalation,
        )

    def _mark(
        self,
        timestamp: float,
        value: float,
        side: int,
        score: float,
        expected: float,
        lower: float,
        upper: float,
        baseline: float,
        cooldown: float,
        escalation: float,
    ) -> int:
        code = self._classify(timestamp, value, side, score, baseline, cooldown, escalation)
        distance = half_widths(score)
        if code == NEW:
            self.side, self.peak = side or _ANY_SIDE, distance
            self.level = expected - baseline
            self.below, self.above = expected - lower, upper - expected
        else:
            if self.side == _ANY_SIDE and side != 0:
                self.side = side
            if distance > self.peak:
                self.peak = distance
        # A point older than the latest (possible only in a what-if) does not move it back.
        if timestamp > self.last:
            self.last = timestamp
        return code


Baseline = Callable[[float], float]
"""A detector's seasonal baseline at a time
(:meth:`~anomaly_api.detectors.base.Detector.baseline_at`)."""


def mark(
    incident: Incident,
    timestamps: FloatArray,
    values: FloatArray,
    scores: Scores,
    baseline: Baseline,
    cooldown: float,
    escalation: float,
) -> npt.NDArray[np.int8]:
    """The marker of each of a stream's points, in order, learning them: what
    :meth:`Incident.mark` answers point by point. Only anomalous points are visited
    (they are few), so a batch costs one array pass."""
    codes = np.zeros(len(scores), dtype=np.int8)
    flagged = np.flatnonzero(scores.anomaly)
    if flagged.size:
        shape = codes.shape
        columns = (
            timestamps[flagged].tolist(),
            values[flagged].tolist(),
            scores.side[flagged].tolist(),
            scores.score[flagged].tolist(),
            np.broadcast_to(scores.expected, shape)[flagged].tolist(),
            np.broadcast_to(scores.lower, shape)[flagged].tolist(),
            np.broadcast_to(scores.upper, shape)[flagged].tolist(),
        )
        for index, stamp, value, side, score, expected, lower, upper in zip(
            flagged.tolist(), *columns, strict=True
        ):
            codes[index] = incident._mark(
                stamp,
                value,
                side,
                score,
                expected,
                lower,
                upper,
                baseline(stamp),
                cooldown,
                escalation,
            )
    return codes


def classify_each(
    incident: Incident,
    timestamps: FloatArray,
    values: FloatArray,
    scores: Scores,
    baseline: Baseline,
    cooldown: float,
    escalation: float,
) -> npt.NDArray[np.int8]:
    """The marker of each point as if it alone followed ``incident`` (what-ifs, points
    older than the stream); nothing is learnt."""
    codes = np.zeros(len(scores), dtype=np.int8)
    for index in np.flatnonzero(scores.anomaly).tolist():
        stamp = float(timestamps[index])
        codes[index] = incident._classify(
            stamp,
            float(values[index]),
            int(scores.side[index]),
            float(scores.score[index]),
            baseline(stamp),
            cooldown,
            escalation,
        )
    return codes
