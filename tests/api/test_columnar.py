"""Columnar answers: the bytes are what orjson writes for the whole document."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from anomaly_api.api.columnar import COLUMNS, columnar_json, parse_columns
from anomaly_api.detectors import Scores
from anomaly_api.errors import InvalidInput


def scores(size: int, constant_band: bool) -> Scores:
    rng = np.random.default_rng(size)
    band = np.broadcast_to(np.array(7.25), (size,)) if constant_band else rng.normal(0, 1, size)
    return Scores(
        expected=np.full(size, 1 / 3),
        lower=np.full(size, -np.inf),
        upper=band,
        score=rng.uniform(0, 1, size),
        anomaly=rng.uniform(0, 1, size) > 0.5,
        side=np.zeros(size, dtype=np.int8),
        incident=rng.integers(0, 3, size).astype(np.int8),
    )


NAMES = [None, "new", "ongoing"]


@pytest.mark.parametrize("size", [0, 1, 2, 1000])
@pytest.mark.parametrize("constant_band", [True, False])
def test_the_bytes_match_orjson_on_the_whole_document(size: int, constant_band: bool) -> None:
    answer = scores(size, constant_band)
    expected = orjson.dumps(
        {
            "series_id": "s",
            "count": size,
            **{
                name: np.ascontiguousarray(getattr(answer, name))
                for name in COLUMNS
                if name != "incident"
            },
            "incident": [NAMES[code] for code in answer.incident.tolist()],  # type: ignore[union-attr]
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    assert columnar_json(answer, series_id="s") == expected


def test_unmarked_scores_have_no_incident() -> None:
    answer = scores(3, True)
    unmarked = Scores(
        answer.expected, answer.lower, answer.upper, answer.score, answer.anomaly, answer.side
    )
    assert orjson.loads(columnar_json(unmarked, ("incident",)))["incident"] == [None] * 3


def test_only_the_asked_columns_are_written() -> None:
    document = orjson.loads(columnar_json(scores(3, True), ("score",), detector="zscore"))
    assert set(document) == {"detector", "count", "score"}


def test_columns_are_validated() -> None:
    assert parse_columns(None) == COLUMNS
    with pytest.raises(InvalidInput, match="valid: anomaly, score"):
        parse_columns("score,nope")


def test_integer_timestamps_take_the_quick_path_with_the_same_result() -> None:
    import msgspec

    from anomaly_api.api.body import _decode
    from anomaly_api.api.columnar import (
        BatchRequest,
        IntPointsBody,
        PointsBody,
        timestamps_array,
    )

    structs = (IntPointsBody, PointsBody)
    ints = _decode(structs, BatchRequest, b'{"timestamps": [3, 1, 2], "values": [1, 2, 3]}')
    mixed = _decode(structs, BatchRequest, b'{"timestamps": [3.7, "1", 2], "values": [1, 2, 3]}')
    assert isinstance(ints, IntPointsBody) and not isinstance(mixed, IntPointsBody)
    assert timestamps_array(ints).tolist() == timestamps_array(mixed).tolist() == [3, 1, 2]
    huge = msgspec.json.decode(
        b'{"timestamps": [18446744073709551615], "values": [1]}', type=IntPointsBody
    )
    with pytest.raises(InvalidInput, match="timestamps"):
        timestamps_array(huge)
