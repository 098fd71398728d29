"""Detector parameters: each declared once with its type, default, range and meaning,
so that fits are validated, ``GET /detectors`` lists them and errors name them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from anomaly_api.errors import InvalidParameter

JsonDict = dict[str, Any]
Direction = Literal["both", "upper", "lower"]
DIRECTIONS: tuple[Direction, ...] = ("both", "upper", "lower")


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


MAX_THRESHOLD = 1000.0
"""The widest band any detector takes, in its units of spread: beyond it no point of real
data is ever anomalous, so a larger threshold can only be a mistake (or a way to silence
a series' alerts) and is refused."""
THRESHOLD = Parameter(
    "threshold",
    float,
    3.0,
    "How far from the expected value, in the detector's units of spread, a point may lie "
    "before it is anomalous (k in mean ± k·std).",
    minimum=0.0,
    exclusive_minimum=True,
    maximum=MAX_THRESHOLD,
)
DIRECTION = Parameter(
    "direction",
    str,
    "both",
    "Which deviations are anomalies: 'both' sides of the band, only 'upper' (spikes) or "
    "only 'lower' (drops).",
    choices=DIRECTIONS,
)
COOLDOWN = Parameter(
    "cooldown_seconds",
    int,
    86_400,
    "How long an incident stays open after its latest anomalous point: an anomalous point "
    "within it is 'ongoing', one after it opens a 'new' incident (0: every anomalous point "
    "is new). Bands and scores do not depend on it.",
    minimum=0,
    maximum=30 * 86_400,
)
ESCALATION = Parameter(
    "escalation",
    float,
    2.0,
    "An anomalous point this many times farther outside the band than the worst point of "
    "the open incident (in band half-widths) opens a 'new' one (0: never).",
    minimum=0.0,
    maximum=1e6,
)
INCIDENT_PARAMETERS = (COOLDOWN, ESCALATION)  # cooldown first: detectors set its default
"""Parameters every detector takes (after its own): the incident rules of
:mod:`anomaly_api.detectors.incidents`."""
QUANTILE = Parameter(
    "quantile",
    float,
    0.99,
    "Quantile of the training residuals' absolute values that is one unit of deviation "
    "(the band is threshold units wide).",
    minimum=0.5,
    maximum=0.9999,
)
CALIBRATED_THRESHOLD = Parameter(
    "threshold",
    float,
    1.5,
    "Band half-width in calibrated units: multiples of the quantile (99th percentile by "
    "default) of the training residuals' absolute values.",
    minimum=0.0,
    exclusive_minimum=True,
    maximum=MAX_THRESHOLD,
)
