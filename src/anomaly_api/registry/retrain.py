"""Retrain policies: how often a series is fitted again on its own stream, and on what.

A fit may carry ``"retrain": {"every": E, "window": W}``; E and W are a number of points
(an integer) or a duration (``"90s"``, ``"30m"``, ``"12h"``, ``"1d"``, ``"2w"``). After
each point a series observes, the service checks the policy of the version that scored
it, when that version is the latest: once E points were observed after that version's
training data (or E seconds of stream time, by the points' timestamps, passed since its
last training timestamp), it fits the same detector with the same parameters on the
last W of the series' history (training data and observed points) and stores the result
as the next version, with ``trigger: "retrain"``; the next point is scored by it. So a
replay of a file and a live stream of it retrain at the same points.

Automatic versions are kept as the policy's ``keep`` says (the newest ``keep``, default
:data:`DEFAULT_KEEP`, and any younger than ``keep_for``); client fits stay until
deleted. A fit without ``retrain`` gets its detector's default policy
(:data:`DEFAULT_POLICIES`, chosen by evaluation: see the README); ``"retrain": false``
turns retraining off.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomaly_api.detectors.series import FloatArray, IntArray
from anomaly_api.errors import InvalidParameter
from anomaly_api.storage.base import JsonDict, Retention

DEFAULT_KEEP = 10
"""Automatic versions kept per series unless the policy says otherwise."""
MAX_KEEP = 10_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_MAX_SECONDS = 366 * 86_400

DEFAULT_POLICIES: dict[str, JsonDict | None] = {
    "zscore": {"every": "12h", "window": "7d"},
    "robust": {"every": 288, "window": 8640},  # re-cross-validated with its calibration
    "seasonal": {"every": 288, "window": 4032},  # re-cross-validated with its calibration
    "hampel": {"every": 288, "window": "14d"},
    "adaptive": {"every": 1000, "window": 4032},
    "cusum": {"every": 100, "window": 4032},  # cross-validated (docs/detection.md)
    "spread": {"every": 288, "window": "14d"},  # cross-validated (docs/detection.md)
    "trend": {"every": 1000, "window": 4032},  # cross-validated (docs/detection.md)
    "pattern": {"every": 288, "window": 4032},
}
"""Each detector's policy when a fit names none: the best fixed policy of a grid (every
none, 100, 288, 1000 points, 12 h, 1 d, 7 d; window 2016, 4032, 8640 points, 7, 14, 28
days) under leave-one-category-out cross-validation over NAB's development categories
and the second corpus (12 categories; docs/detection.md has the figures)."""


@dataclass(frozen=True, slots=True)
class Span:
    """A number of points, or a number of seconds."""

    points: int | None = None
    seconds: float | None = None

    def to_json(self) -> int | str:
        if self.points is not None:
            return self.points
        assert self.seconds is not None
        for unit in ("d", "h", "m"):
            if self.seconds % _UNITS[unit] == 0:
                return f"{int(self.seconds // _UNITS[unit])}{unit}"
        return f"{self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class RetrainPolicy:
    """When to fit again (``every``), on what (``window``), and which automatic versions
    to keep."""

    every: Span
    window: Span
    keep: int = DEFAULT_KEEP
    keep_for: float | None = None

    def to_json(self) -> JsonDict:
        data: JsonDict = {"every": self.every.to_json(), "window": self.window.to_json()}
        data["keep"] = self.keep
        if self.keep_for is not None:
            data["keep_for"] = Span(seconds=self.keep_for).to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RetrainPolicy | None:
        """A stored policy (None: none); trusted, as it was validated at the fit."""
        if data is None:
            return None
        return parse_policy(data, max_points=None)

    def retention(self) -> Retention:
        return Retention(keep=self.keep, keep_seconds=self.keep_for)

    def points_until_due(self, since: int) -> int | None:
        """With a points cadence, how many more observed points make it due (at least 1)."""
        if self.every.points is None:
            return None
        return max(self.every.points - since, 1)

    def due(self, since: int, timestamp: int, trained_until: int) -> bool:
        """Whether a version trained up to ``trained_until``, which has seen ``since``
        points after it, the newest at ``timestamp``, is due for a retrain."""
        if self.every.points is not None:
            return since >= self.every.points
        assert self.every.seconds is not None
        return since > 0 and timestamp - trained_until >= self.every.seconds

    def first_due(self, since: int, timestamps: IntArray, trained_until: int) -> int | None:
        """The index of the first of these observed points after which a retrain is due
        (``since`` points were observed before them); None if none."""
        if timestamps.size == 0:
            return None
        if self.every.points is not None:
            index = self.every.points - since - 1
            return max(index, 0) if index < timestamps.size else None
        assert self.every.seconds is not None
        reached = np.flatnonzero(timestamps - trained_until >= self.every.seconds)
        return int(reached[0]) if reached.size else None

    def window_of(self, timestamps: IntArray, values: FloatArray) -> tuple[IntArray, FloatArray]:
        """The last ``window`` of a history (timestamps ascending)."""
        if self.window.points is not None:
            return timestamps[-self.window.points :], values[-self.window.points :]
        assert self.window.seconds is not None
        start = int(np.searchsorted(timestamps, timestamps[-1] - self.window.seconds, "right"))
        return timestamps[start:], values[start:]


def parse_span(value: Any, field: str, max_points: int | None) -> Span:
    """An integer number of points (at most ``max_points``) or a duration string."""
    if isinstance(value, bool):
        raise InvalidParameter(f"{field} must be a number of points or a duration", field=field)
    if isinstance(value, int):
        if value < 1:
            raise InvalidParameter(f"{field} must be at least 1 point, got {value}", field=field)
        if max_points is not None and value > max_points:
            raise InvalidParameter(
                f"{field} is {value} points, more than the {max_points} observed points each "
                "series keeps (ANOMALY_STREAM_HISTORY_POINTS); give fewer points or a duration",
                field=field,
            )
        return Span(points=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is not None:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
            if 0 < seconds <= _MAX_SECONDS:
                return Span(seconds=seconds)
    raise InvalidParameter(
        f"{field} must be a number of points (an integer) or a duration such as '90s', "
        f"'30m', '12h', '1d' or '2w' (at most 366 days), got {value!r}",
        field=field,
    )


def parse_policy(data: Any, max_points: int | None) -> RetrainPolicy:
    """A policy from a fit body's ``retrain`` object, or an error naming the field."""
    if not isinstance(data, Mapping):
        raise InvalidParameter(
            'retrain must be an object such as {"every": "1d", "window": "14d"}, or '
            "false to turn retraining off",
            field="retrain",
        )
    unknown = sorted(set(data) - {"every", "window", "keep", "keep_for"})
    if unknown:
        raise InvalidParameter(
            f"retrain: unknown field(s) {', '.join(map(str, unknown))}; valid: every, window, "
            "keep, keep_for",
            field=f"retrain.{unknown[0]}",
        )
    for name in ("every", "window"):
        if name not in data:
            raise InvalidParameter(f"retrain.{name} is missing", field=f"retrain.{name}")
    keep = data.get("keep", DEFAULT_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
        raise InvalidParameter(
            f"retrain.keep must be an integer from 1 to {MAX_KEEP}", field="retrain.keep"
        )
    keep_for = data.get("keep_for")
    seconds = None
    if keep_for is not None:
        span = parse_span(keep_for, "retrain.keep_for", max_points=None)
        if span.seconds is None:
            raise InvalidParameter(
                "retrain.keep_for must be a duration such as '30d'", field="retrain.keep_for"
            )
        seconds = span.seconds
    return RetrainPolicy(
        every=parse_span(data["every"], "retrain.every", max_points),
        window=parse_span(data["window"], "retrain.window", max_points),
        keep=keep,
        keep_for=seconds,
    )


def retrain_marks(policy: RetrainPolicy | None, trained_until: int) -> tuple[float, float, float]:
    """``(points, seconds, trained_until)``, for checking many points at once in arrays
    (the bulk path): :meth:`RetrainPolicy.due` of ``since``
    points, the newest at ``timestamp``, is ``since >= points or (since > 0 and
    timestamp - trained_until >= seconds)``, with infinity for a cadence not in use."""
    if policy is None:
        return math.inf, math.inf, float(trained_until)
    every = policy.every
    return (
        math.inf if every.points is None else float(every.points),
        math.inf if every.seconds is None else float(every.seconds),
        float(trained_until),  # exact: |timestamps| < 2**53
    )


def default_policy(detector: str) -> JsonDict | None:
    """The detector's default policy in its stored form (keep filled in)."""
    default = DEFAULT_POLICIES.get(detector)
    return None if default is None else parse_policy(default, max_points=None).to_json()


def policy_for_fit(detector: str, requested: Any, max_points: int) -> RetrainPolicy | None:
    """The policy a fit stores: the detector's default when the body gave none (absent or
    null), none for ``false``, else the body's, validated."""
    if requested is None:
        default = DEFAULT_POLICIES.get(detector)
        return None if default is None else parse_policy(default, max_points=None)
    if requested is False:
        return None
    return parse_policy(requested, max_points)
