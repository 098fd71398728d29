"""Request and response bodies, as the wire contract (``CONTRACT.md``) spells them.

Contract fields keep their names and JSON types (``version`` and ``model_version`` are
strings); everything else is additive. Descriptions here are what ``/docs`` shows.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    FailFast,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from anomaly_api.detectors.incidents import NAMES as INCIDENTS
from anomaly_api.errors import InvalidParameter
from anomaly_api.registry import Prediction
from anomaly_api.storage.base import ModelRecord, SeriesSummary

if TYPE_CHECKING:
    from anomaly_api.detectors.bands import PointScore
    from anomaly_api.registry.cache import LoadedModel

TimestampIn = StrictInt | StrictFloat | StrictStr
Number = StrictInt | StrictFloat


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


class FitRequest(BaseModel):
    """Training data for one series, and optionally how to model it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240],
                    "values": [10, 11, 9, 12, 15],
                },
                {
                    "timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240],
                    "values": [10, 11, 9, 12, 15],
                    "threshold": 2.5,
                    "direction": "upper",
                },
            ]
        }
    )

    # FailFast: a list stops at its first bad item. Validating each of a million bad
    # values built a million errors (384 MB for a 4 MB body) to answer ten of them.
    timestamps: Annotated[list[TimestampIn], FailFast()] = Field(
        description="Unix seconds (integers), one per value. Numeric strings and ISO-8601 "
        "date-times are accepted too. Any order: points are sorted by time; repeated "
        "timestamps are kept as separate observations.",
    )
    values: Annotated[list[Number], FailFast()] = Field(
        description="The observations: finite numbers (NaN, infinity and null are rejected), "
        "as many as timestamps, at least as many as the detector needs (5 for zscore).",
    )
    threshold: float | None = Field(
        None,
        gt=0,
        strict=True,  # not "0.5" or true: a typo must not become a threshold
        description="How many standard deviations from the mean a point may lie before it is "
        "anomalous (default 3). Shorthand for params.threshold.",
    )
    direction: Literal["both", "upper", "lower"] | None = Field(
        None,
        description="Which deviations are anomalies: 'both' (default), 'upper' or 'lower'. "
        "Shorthand for params.direction.",
    )
    detector: str | None = Field(
        None,
        description="Detector name: zscore (the default unless ANOMALY_DEFAULT_DETECTOR says "
        "otherwise), robust, seasonal, hampel or adaptive; GET /detectors describes each.",
    )
    params: dict[str, Any] | None = Field(
        None, description="Detector parameters (see GET /detectors for each detector's)."
    )
    retrain: dict[str, Any] | StrictBool | None = Field(
        None,
        description="How the service fits the series again by itself on the points it "
        'observes: {"every": E, "window": W} (a number of points, or a duration such as '
        "'12h', '1d', '2w'), with optional \"keep\" (automatic versions kept, default 10) and "
        '"keep_for" (keep younger ones too, a duration). Omitted or null: the detector\'s '
        "default (GET /detectors); false: never.",
        examples=[{"every": "1d", "window": "14d"}, False],
    )

    def detector_params(self) -> dict[str, Any]:
        """``params`` with the top-level shorthands merged in; a conflict is an error."""
        return merge_params(self.params, self.threshold, self.direction)


def merge_params(
    params: dict[str, Any] | None, threshold: float | None, direction: str | None
) -> dict[str, Any]:
    """Detector ``params`` with the fit body's ``threshold``/``direction`` shorthands
    merged in; the same name given twice with different values is an error."""
    merged = dict(params or {})
    for name, shorthand in (("threshold", threshold), ("direction", direction)):
        if shorthand is None:
            continue
        if name in merged and merged[name] != shorthand:
            raise InvalidParameter(
                f"{name} is given twice with different values ({shorthand!r} and "
                f"params.{name}={merged[name]!r}); give it once",
                field=name,
            )
        merged[name] = shorthand
    return merged


class FitResponse(BaseModel):
    """The version a fit created."""

    # A real answer (the README's walkthrough), shown by /docs instead of "string".
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"series_id": "sensor_1", "version": "1", "points_used": 5, "detector": "zscore",
                 "params": {"threshold": 3.0, "direction": "both", "cooldown_seconds": 14400,
                            "escalation": 2.0},
                 "points_stored": 5, "first_timestamp": 1691000000,
                 "last_timestamp": 1691000240, "created_at": "2026-12-05T06:53:52.600448Z",
                 "trigger": "client", "retrain": {"every": "12h", "window": "7d", "keep": 10}}
            ]
        }
    )  # fmt: skip

    series_id: str = Field(description="The series the model belongs to.")
    version: str = Field(description="The new version number, as a string: '1', '2', ...")
    points_used: int = Field(description="How many points the model was fitted on.")
    detector: str = Field(description="The detector that was fitted.")
    params: dict[str, Any] = Field(description="Its parameters, defaults filled in.")
    points_stored: int = Field(
        description="Training points kept with the version (ANOMALY_TRAINING_POINTS_CAP)."
    )
    first_timestamp: int = Field(description="Earliest training timestamp (Unix seconds).")
    last_timestamp: int = Field(description="Latest training timestamp (Unix seconds).")
    created_at: str = Field(description="When the version was stored (ISO-8601, UTC).")
    trigger: Literal["client", "retrain"] = Field(
        "client",
        description="Who asked for the version: a client's fit, or the series' retrain policy.",
    )
    retrain: dict[str, Any] | None = Field(
        None, description="The retrain policy from this version on (null: none)."
    )

    @classmethod
    def from_record(cls, record: ModelRecord) -> FitResponse:
        return cls(
            series_id=record.series_id,
            version=str(record.version),
            points_used=record.points_used,
            detector=record.detector,
            params=record.params,
            points_stored=record.points_stored,
            first_timestamp=record.first_timestamp,
            last_timestamp=record.last_timestamp,
            created_at=_iso(record.created_at),
            trigger=record.trigger,
            retrain=record.retrain,
        )


class PredictRequest(BaseModel):
    """One point to score."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"timestamp": "1691000240", "value": 18}]}
    )

    timestamp: TimestampIn = Field(
        description="When the value was observed: Unix seconds as a string (as in the "
        "contract) or a number, or an ISO-8601 date-time."
    )
    value: Number = Field(description="The observation: a finite number.")

    _fits = field_validator("value")(lambda value: fits_a_float(value))


_LARGEST_FLOAT = 1.7976931348623157e308


def fits_a_float(value: int | float) -> int | float:
    """``value``, refused (a 422 naming the field) when an integer too large to be a
    float: JSON allows any number of digits."""
    if isinstance(value, int) and not -_LARGEST_FLOAT <= value <= _LARGEST_FLOAT:
        raise ValueError("value is an integer beyond the range of a float (about 1.8e308)")
    return value


class PredictResponse(BaseModel):
    """Whether the point is anomalous, and why."""

    # A real answer (the README's walkthrough), shown by /docs instead of "string".
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"anomaly": True, "model_version": "1", "series_id": "sensor_1",
                 "timestamp": 1691000360, "value": 40.0, "expected": 11.5,
                 "lower": 5.821091654199726, "upper": 17.178908345800274,
                 "score": 0.9618117229129662, "direction": "above", "threshold": 3.0,
                 "detector": "zscore", "observed": True, "not_observed": None,
                 "incident": "new"}
            ]
        }
    )  # fmt: skip

    anomaly: bool = Field(description="True when the value lies outside the band.")
    model_version: str = Field(description="The version that answered, as a string.")
    series_id: str = Field(description="The series.")
    timestamp: int = Field(description="The point's time, in Unix seconds.")
    value: float = Field(description="The point's value.")
    expected: float = Field(description="What the model expected (zscore: the training mean).")
    lower: float | None = Field(
        description="Lower edge of the normal band; null when that side is not watched."
    )
    upper: float | None = Field(
        description="Upper edge of the normal band; null when that side is not watched."
    )
    score: float = Field(
        description="How unusual the point is, in [0, 1]: 0 at the expected value, 0.5 on the "
        "edge of the band, towards 1 far outside it."
    )
    direction: Literal["above", "below"] | None = Field(
        description="Which side of the band the value lies beyond; null inside the band."
    )
    threshold: float | None = Field(description="The model's threshold (k).")
    detector: str = Field(description="The detector that answered.")
    observed: bool = Field(
        description="Whether the point joined the series' history: later points are scored "
        "as its continuation (and the model learns from it as its detector does)."
    )
    not_observed: Literal["repeated_timestamp", "out_of_order", "what_if"] | None = Field(
        description="Why it did not: its timestamp equals the last one the series observed "
        "(repeated_timestamp) or is earlier (out_of_order), so it was scored against the "
        "history without joining it; or ?observe=false asked for a what-if (what_if). Null "
        "when observed."
    )
    incident: Literal["new", "ongoing"] | None = Field(
        None,
        description="Alert de-duplication, separate from the band: 'new' when the point opens "
        "an incident (none open, a quiet gap of cooldown_seconds since the last anomalous "
        "point, the other side of the band, or escalation times worse), 'ongoing' when it "
        "belongs to the open one, null when the point is not anomalous. Page on 'new'.",
    )


def prediction_json(prediction: Prediction) -> bytes:
    """The :class:`PredictResponse` body: the answer's fields are the wire's, in its
    order, so orjson writes it as is. The predict path is the hot one, so it skips
    building and re-validating a pydantic model; ``tests/api/test_schemas.py`` checks
    the bytes validate as PredictResponse."""
    return orjson.dumps(prediction)


_SIDES = {1: "above", -1: "below", 0: None}


def point_json(
    loaded: LoadedModel, timestamp: int, value: float, point: PointScore, why: str | None
) -> bytes:
    """:func:`prediction_json` of the answer :func:`~anomaly_api.registry.scoring.prediction`
    would build from these, without building it (the fast path; ``tests/api`` checks
    the bytes are the same)."""
    lower, upper = point.lower, point.upper
    return orjson.dumps(
        {
            "anomaly": point.anomaly,
            "model_version": loaded.version_text,
            "series_id": loaded.series_id,
            "timestamp": timestamp,
            "value": value,
            "expected": point.expected,
            "lower": lower if -math.inf < lower < math.inf else None,
            "upper": upper if -math.inf < upper < math.inf else None,
            "score": point.score,
            "direction": _SIDES[point.side],
            "threshold": loaded.threshold,
            "detector": loaded.detector_name,
            "observed": why is None,
            "not_observed": why,
            "incident": INCIDENTS[point.incident],
        }
    )


class LatencySummary(BaseModel):
    """Latency over the most recent requests: ANOMALY_LATENCY_WINDOW per worker, merged
    over the server's live workers."""

    avg: float = Field(description="Mean, in milliseconds.")
    p95: float = Field(description="95th percentile, in milliseconds.")
    count: int = Field(description="How many requests the merged windows hold.")


class StoreStatus(BaseModel):
    """Whether the model store answers."""

    backend: str
    ok: bool
    error: str | None


class HealthResponse(BaseModel):
    """Service health: the contract's fields first, then additive ones."""

    # A real answer (the README's walkthrough), shown by /docs instead of "string".
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"series_trained": 1,
                 "inference_latency_ms": {"avg": 0.789, "p95": 1.149, "count": 3},
                 "training_latency_ms": {"avg": 1.699, "p95": 1.699, "count": 1},
                 "status": "ok", "store": {"backend": "sqlite", "ok": True, "error": None},
                 "models_cached": 1, "workers": 1, "uptime_s": 3.433, "version": "0.2.0"}
            ]
        }
    )  # fmt: skip

    series_trained: int | None = Field(
        description="Series with at least one model in the store (null if the store is down)."
    )
    inference_latency_ms: LatencySummary = Field(
        description="Predicts and batches: the scoring's time; for a cached single predict "
        "(answered without the framework), its whole request's, parsing and writing included."
    )
    training_latency_ms: LatencySummary
    status: Literal["ok", "unavailable"]
    store: StoreStatus
    models_cached: int = Field(
        description="Fitted models held in memory, summed over the server's live workers."
    )
    workers: int = Field(description="Live worker processes the latencies and models_cached cover.")
    uptime_s: float
    version: str = Field(description="anomaly-api release.")


class VersionInfo(BaseModel):
    """One version of a series."""

    version: str
    detector: str
    params: dict[str, Any]
    points_used: int
    points_stored: int
    first_timestamp: int
    last_timestamp: int
    created_at: str
    trigger: Literal["client", "retrain"] = Field(
        "client", description="A client's fit, or the series' retrain policy."
    )
    retrain: dict[str, Any] | None = Field(
        None, description="The retrain policy from this version on (null: none)."
    )
    created_by: str | None = Field(
        None,
        description="The API key whose fit this is (a retrain: the key of the version "
        "retrained); null: anonymous.",
    )

    @classmethod
    def from_record(cls, record: ModelRecord) -> VersionInfo:
        return cls(
            version=str(record.version),
            detector=record.detector,
            params=record.params,
            points_used=record.points_used,
            points_stored=record.points_stored,
            first_timestamp=record.first_timestamp,
            last_timestamp=record.last_timestamp,
            created_at=_iso(record.created_at),
            trigger=record.trigger,
            retrain=record.retrain,
            created_by=record.created_by,
        )


class StreamInfo(BaseModel):
    """What the series' stream holds."""

    last_timestamp: int | None = Field(
        description="The last timestamp the series observed (or trained on): later points "
        "join its history, others are scored without joining it."
    )
    points_observed: int = Field(description="Points that joined the history since its start.")
    points_unsaved: int = Field(
        description="Of those, points not saved yet (saved every ANOMALY_STREAM_FLUSH_S)."
    )
    last_score: float | None = Field(None, description="The newest point's score.")
    anomalies_last_hour: int = Field(
        0, description="Anomalous points in the hour up to the newest point (its own clock)."
    )
    anomalies_last_day: int = Field(
        0, description="Anomalous points in the day up to the newest point."
    )
    incidents_last_day: int = Field(
        0, description="Incidents opened in the day up to the newest point."
    )


_STREAM_EXAMPLE: dict[str, JsonValue] = {
    "last_timestamp": 1764784500,
    "points_observed": 600,
    "points_unsaved": 0,
    "last_score": 0.0004598002775117207,
    "anomalies_last_hour": 0,
    "anomalies_last_day": 3,
    "incidents_last_day": 3,
}
"""A real stream's counters, for the examples below."""


class SeriesDetail(BaseModel):
    """A series, its versions (oldest first, a page at a time) and its stream."""

    # A real answer (?limit=1 of a streamed seasonal series), shown by /docs.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"series_id": "web-latency", "latest_version": "3",
                 "versions": [
                     {"version": "1", "detector": "seasonal",
                      "params": {"threshold": 1.5, "direction": "both", "period": "auto",
                                 "period_seconds": 0, "quantile": 0.99,
                                 "cooldown_seconds": 14400, "escalation": 2.0},
                      "points_used": 2016, "points_stored": 2016,
                      "first_timestamp": 1764000000, "last_timestamp": 1764604500,
                      "created_at": "2026-12-05T08:07:15.614757Z", "trigger": "client",
                      "retrain": {"every": 288, "window": 4032, "keep": 10},
                      "created_by": None}
                 ],
                 "next_after": "1",
                 "stream": _STREAM_EXAMPLE}
            ]
        }
    )  # fmt: skip

    series_id: str
    latest_version: str
    versions: list[VersionInfo]
    next_after: str | None = Field(
        None,
        description="When more versions follow this page: the last version on it, to pass "
        "as ?after= for the next page; null on the last page.",
    )
    stream: StreamInfo | None = Field(
        None, description="The series' stream; null before its first predict."
    )


class SeriesListItem(BaseModel):
    """A series in a listing."""

    series_id: str
    latest_version: str
    version_count: int
    points_used: int = Field(description="Points the latest version was fitted on.")
    last_fit_at: str
    stream: StreamInfo | None = Field(
        None, description="With `?stream=true`: the stream's counters (null: no point yet)."
    )

    @classmethod
    def from_summary(cls, summary: SeriesSummary) -> SeriesListItem:
        return cls(
            series_id=summary.series_id,
            latest_version=str(summary.latest_version),
            version_count=summary.version_count,
            points_used=summary.points_used,
            last_fit_at=_iso(summary.last_fit_at),
        )


class SeriesPage(BaseModel):
    """One page of series, ordered by id."""

    # A real answer (?search=web&stream=true&limit=1), shown by /docs.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"series": [
                    {"series_id": "web-latency", "latest_version": "3", "version_count": 3,
                     "points_used": 2592, "last_fit_at": "2026-12-05T08:07:15.859217Z",
                     "stream": _STREAM_EXAMPLE}
                 ],
                 "total": 3, "next_after": None}
            ]
        }
    )  # fmt: skip

    series: list[SeriesListItem]
    total: int = Field(description="How many series have at least one version.")
    next_after: str | None = Field(
        description="Pass as ?after= to get the next page; null on the last page."
    )


class DeleteResponse(BaseModel):
    """What a delete removed."""

    # A real answer (DELETE /series/old-sensor), shown by /docs.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"series_id": "old-sensor", "deleted_versions": None, "deleted_count": 1}]
        }
    )

    series_id: str
    deleted_versions: list[str] | None = None
    deleted_count: int


class DetectorParameter(BaseModel):
    """One parameter of a detector."""

    model_config = ConfigDict(extra="allow")

    name: str
    type: str
    default: Any
    description: str


class DetectorInfo(BaseModel):
    """A detector that fits accept."""

    name: str
    description: str
    min_points: int
    parameters: list[DetectorParameter]
    default: bool = Field(description="Whether fits without a detector field use it.")
    learns: str = Field(description="How it learns from the points a series observes.")
    retrain: dict[str, Any] | None = Field(
        description="The retrain policy a fit gets when it names none (chosen by evaluation; "
        "null: none)."
    )


class ErrorResponse(BaseModel):
    """Every error: a sentence naming the field or the missing thing."""

    # A real answer (a fit with too few points), shown by /docs.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "zscore needs at least 5 points to fit, got 3",
                 "errors": [{"field": "values",
                             "message": "zscore needs at least 5 points to fit, got 3"}]}
            ]
        }
    )  # fmt: skip

    detail: str
    errors: list[dict[str, str]] | None = Field(
        None, description="For validation errors: each problem with its field."
    )


_ERROR_DESCRIPTIONS = {
    404: "Unknown series or version.",
    413: "Body over ANOMALY_MAX_BODY_BYTES.",
    422: "Invalid input; the message names the field.",
    429: "Over the API key's quota of series or stored points (Retry-After: when to retry).",
    503: "The model store is unavailable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the routes' usual error answers for ``codes``."""
    return {
        code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]} for code in codes
    }
