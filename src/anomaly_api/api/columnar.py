"""Many points per request: batch scoring, one-off detection, and fast body decoding.

A million points is about 30 MB of JSON. Read into pydantic ``list[float]`` fields it
costs several hundred milliseconds; decoded by msgspec straight into typed lists it
costs what parsing the JSON costs, and the lists become numpy arrays in a few more
milliseconds. So the bodies of ``/fit``, ``/predict/{id}/batch`` and ``/detect`` are
decoded with the msgspec structs below, which accept exactly what the pydantic models
accept. When msgspec refuses a body, the pydantic model reads it instead: either it
finds the same fault and explains it with the usual message naming the field, or it
accepts what msgspec could not (integers beyond 64 bits), so clients see one behaviour.
Bodies over 1 MiB are decoded a field at a time and their faults answered from msgspec's
error alone (:data:`anomaly_api.api.body.BIG_BODY_BYTES` says why).

Answers are columnar: one array per field, written by orjson from the numpy arrays.
Writing a million float64 numbers as JSON takes about as long as parsing them, so
``?columns=anomaly,score`` lets a client that needs only some fields skip the rest.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, FailFast, Field
from starlette.responses import Response

from anomaly_api.api.schemas import FitRequest, Number, TimestampIn, merge_params
from anomaly_api.detectors import Scores
from anomaly_api.detectors.series import checked_timestamps, finite_values
from anomaly_api.errors import InvalidInput
from anomaly_api.timestamps import parse_timestamps

Direction = Literal["both", "upper", "lower"]
COLUMNS = ("anomaly", "score", "expected", "lower", "upper", "incident")


def parse_columns(text: str | None) -> tuple[str, ...]:
    """The ``?columns=`` query: a comma-separated subset of :data:`COLUMNS` (all when
    absent), kept in the canonical order.

    >>> parse_columns("score, anomaly")
    ('anomaly', 'score')
    """
    if text is None or not text.strip():
        return COLUMNS
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - set(COLUMNS))
    if unknown:
        raise InvalidInput(
            f"columns: unknown column(s) {', '.join(unknown)}; valid: {', '.join(COLUMNS)}",
            field="columns",
        )
    return tuple(name for name in COLUMNS if name in asked)


class PointsBody(msgspec.Struct):
    """Fast decoding of :class:`BatchRequest`."""

    timestamps: list[int | float | str]
    values: list[float]


class IntPointsBody(PointsBody):
    """:class:`PointsBody` with integer timestamps, the common case, tried first: the
    timestamps then need no per-item type check (see :func:`timestamps_array`)."""

    timestamps: list[int]  # type: ignore[assignment]


class FitBody(msgspec.Struct):
    """Fast decoding of :class:`~anomaly_api.api.schemas.FitRequest` (and ``/detect``)."""

    timestamps: list[int | float | str]
    values: list[float]
    threshold: Annotated[float, msgspec.Meta(gt=0)] | None = None
    direction: Direction | None = None
    detector: str | None = None
    params: dict[str, Any] | None = None
    retrain: dict[str, Any] | bool | None = None

    def detector_params(self) -> dict[str, Any]:
        """``params`` with the top-level shorthands merged in, as FitRequest does."""
        return merge_params(self.params, self.threshold, self.direction)


class IntFitBody(FitBody):
    """:class:`FitBody` with integer timestamps, tried first (see :class:`IntPointsBody`)."""

    timestamps: list[int]  # type: ignore[assignment]


def timestamps_array(body: Any) -> npt.NDArray[np.int64]:
    """The body's timestamps as int64 seconds, checked; integer-only bodies skip the
    per-item parsing that strings and fractions need."""
    if isinstance(body, IntPointsBody | IntFitBody):
        try:
            stamps = np.fromiter(body.timestamps, dtype=np.int64, count=len(body.timestamps))
        except OverflowError:  # msgspec takes up to 2**64 - 1: let the parser name it
            return parse_timestamps(body.timestamps)
        return checked_timestamps(stamps)
    return parse_timestamps(body.timestamps)


class BatchRequest(BaseModel):
    """Many points of one series to score against one model version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"timestamps": [1691000300, 1691000360], "values": [12.5, 80.0]}]
        }
    )

    timestamps: Annotated[list[TimestampIn], FailFast()] = Field(
        description="When each value was observed: Unix seconds (numbers or numeric strings) "
        "or ISO-8601 date-times, one per value. Scored in the order given.",
    )
    values: Annotated[list[Number], FailFast()] = Field(
        description="The observations: finite numbers, as many as timestamps.",
    )


class DetectRequest(FitRequest):
    """A whole series to model and score in one call; nothing is stored."""


class ColumnarScores(BaseModel):
    """Per-point answers as parallel arrays, in the order of the request's points; the
    arrays not named in ``?columns=`` (when given) are left out."""

    count: int = Field(description="How many points were scored.")
    detector: str = Field(description="The detector that scored them.")
    anomaly: list[bool] | None = Field(
        None, description="True where the value lies outside its band."
    )
    score: list[float] | None = Field(None, description="How unusual each point is, in [0, 1].")
    expected: list[float] | None = Field(None, description="What the model expected at each point.")
    lower: list[float | None] | None = Field(
        None, description="Lower edge of each point's band; null where that side is not watched."
    )
    upper: list[float | None] | None = Field(
        None, description="Upper edge of each point's band; null where that side is not watched."
    )
    incident: list[Literal["new", "ongoing"] | None] | None = Field(
        None,
        description="Per point: 'new' where it opens an incident, 'ongoing' where it belongs "
        "to an open one, null where it is not anomalous (as a single predict's answer).",
    )


class BatchResponse(ColumnarScores):
    """The scores of a batch, the version that gave them, and which points joined the
    series' history."""

    series_id: str = Field(description="The series.")
    model_version: str = Field(description="The version that scored the first point, as a string.")
    versions: list[dict[str, Any]] = Field(
        description='Which version scored which points: {"from": index, "version": '
        '"N"} for the first point of each; more than one when the series\' retrain policy '
        "fitted a new version in the middle of the batch."
    )
    observe: bool = Field(description="Whether the points were to join the history.")
    points_observed: int = Field(description="How many points joined the history.")
    not_observed: list[int] = Field(
        description="Indices of the points that did not join it because their timestamp was "
        "not later than the last one observed before them (scored against the history as "
        "it stood); empty with observe=false, where none joins."
    )


class DetectResponse(ColumnarScores):
    """How a model fitted on the series judges each of its points."""

    params: dict[str, Any] = Field(description="The detector's parameters, defaults filled in.")


def columnar_parts(
    scores: Scores, columns: tuple[str, ...] = COLUMNS, **fields: Any
) -> list[bytes]:
    """The JSON document of ``fields`` plus the columns of ``scores``, as the pieces it
    is written in; :class:`PartsResponse` sends them without joining them (joining a
    million-point answer copies 80 MB once more).

    Infinite band edges (a side the detector does not watch) become null, as in a
    single predict's answer. A column holding one value throughout (the band of a
    detector whose band does not move) is written by repeating that value's bytes,
    several times faster than formatting a million equal floats one by one; the bytes
    are the same as orjson's.
    """
    head = orjson.dumps({**fields, "count": len(scores)})
    parts = [head[:-1]]
    for name in columns:
        parts.append(b',"' + name.encode() + b'":')
        if name == "incident":
            parts.append(_incident_column(scores))
        else:
            parts.extend(_column_parts(getattr(scores, name)))
    parts.append(b"}")
    return parts


def columnar_json(scores: Scores, columns: tuple[str, ...] = COLUMNS, **fields: Any) -> bytes:
    """:func:`columnar_parts`, joined."""
    return b"".join(columnar_parts(scores, columns, **fields))


def _all_same(column: npt.NDArray[np.float64]) -> bool:
    """Every item equal to the first, bit for bit as far as JSON goes (-0.0 is not 0.0)."""
    first = column[0]
    return bool(np.all(column == first)) and bool(np.all(np.signbit(column) == np.signbit(first)))


_INCIDENT_ITEMS = np.array([b"null", b'"new"', b'"ongoing"'], dtype=object)


def _incident_column(scores: Scores) -> bytes:
    """The ``incident`` column: a JSON array of "new", "ongoing" and null."""
    codes = scores.incident
    if codes is None or not codes.any():
        return b"[" + b",".join([b"null"] * len(scores)) + b"]"
    return b"[" + b",".join(_INCIDENT_ITEMS[codes].tolist()) + b"]"


def _column_parts(column: npt.NDArray[Any]) -> list[bytes]:
    constant = column.ndim == 1 and column.strides[0] == 0  # one band for every point
    if column.size > 1 and column.dtype == np.float64 and (constant or _all_same(column)):
        item = orjson.dumps(float(column[0]))  # inf is null, as orjson writes it in arrays
        return [b"[", (item + b",") * (column.size - 1), item, b"]"]
    # orjson writes contiguous arrays only (broadcast bands are views with stride 0).
    return [orjson.dumps(np.ascontiguousarray(column), option=orjson.OPT_SERIALIZE_NUMPY)]


class PartsResponse(Response):
    """A JSON answer sent as the list of byte strings it was built from.

    The length is known up front (``Content-Length``, no chunked encoding); small
    neighbouring parts are sent together, large ones as they are.
    """

    media_type = "application/json"
    SMALL = 64 * 1024

    def __init__(self, parts: list[bytes]) -> None:
        super().__init__(content=b"", media_type=self.media_type)
        self.parts = parts
        length = str(sum(len(part) for part in parts)).encode()
        self.raw_headers = [
            (name, length if name == b"content-length" else value)
            for name, value in self.raw_headers
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        pending: list[bytes] = []
        for part in self.parts:
            if len(part) < self.SMALL:
                pending.append(part)
                continue
            if pending:
                await send(
                    {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
                )
                pending = []
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})


def values_array(values: list[float] | list[int | float]) -> npt.NDArray[np.float64]:
    """Decoded values as float64; a NaN or infinity (JSON tokens some clients send) is
    an error naming the item."""
    try:
        array = np.fromiter(values, dtype=np.float64, count=len(values))
    except (OverflowError, TypeError, ValueError):  # an integer beyond float range, say
        return finite_values(values)  # which names the problem
    return finite_values(array)
