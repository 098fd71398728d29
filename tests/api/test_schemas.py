from __future__ import annotations

import re
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from anomaly_api.api.deps import parse_version
from anomaly_api.api.schemas import PredictResponse, point_json, prediction_json
from anomaly_api.errors import InvalidInput
from anomaly_api.registry import ModelRegistry, Prediction
from anomaly_api.series_ids import check_series_id
from anomaly_api.storage import open_store


def test_hand_serialized_prediction_matches_the_documented_schema() -> None:
    prediction = Prediction(
        anomaly=True,
        model_version="3",
        series_id="s",
        timestamp=1691000240,
        value=18.0,
        expected=11.4,
        lower=None,
        upper=17.5,
        score=0.6,
        direction="above",
        threshold=3.0,
        detector="zscore",
    )
    body = PredictResponse.model_validate_json(prediction_json(prediction))
    assert body.model_version == "3" and prediction.version == 3
    # Every field, in the documented order.
    assert list(orjson.loads(prediction_json(prediction))) == list(PredictResponse.model_fields)


def test_the_fast_paths_answer_has_the_same_bytes_as_the_routes(tmp_path: Path) -> None:
    """point_json (the fast path) writes what prediction_json writes of the Prediction
    the registry builds: every side of the band, inside and outside it, observed or not."""
    registry = ModelRegistry(open_store(f"sqlite:///{tmp_path / 'm.db'}"))
    try:
        stamps = list(range(1_691_000_000, 1_691_000_000 + 60 * 50, 60))
        values = [10.0 + (i % 7) for i in range(50)]
        for series_id, direction in (("both", "both"), ("up", "upper"), ("down", "lower")):
            registry.fit(series_id, stamps, values, params={"direction": direction})
            registry.predict(series_id, 12.0, stamps[-1] + 60)  # live, cached from here
            for offset, value, observe in (
                (120, 11.0, True),  # inside the band
                (180, 90.0, True),  # above it
                (240, -70.0, True),  # below it
                (240, 12.0, True),  # repeated timestamp: not observed
                (300, 13.0, False),  # what-if
            ):
                at = stamps[-1] + offset
                before = registry.streams.cached(series_id)
                assert before is not None and before.context is not None
                saved = before.context.copy(), before.last_timestamp, before.observed
                found = registry.score_cached(series_id, value, at, None, observe)
                assert found is not None
                loaded, stamp, point, why = found
                fast = point_json(loaded, stamp, value, point, why)
                # The same point again through predict_cached, from the same stream state.
                before.context, before.last_timestamp, before.observed = saved
                answer = registry.predict_cached(series_id, value, at, None, observe)
                assert answer is not None
                assert fast == prediction_json(answer)
    finally:
        registry.close()


def test_the_schema_documents_the_series_id_and_version_rules(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    parameters = {
        p["name"]: p["schema"]
        for p in schema["paths"]["/predict/{series_id}"]["post"]["parameters"]
    }
    series = parameters["series_id"]
    assert (series["minLength"], series["maxLength"]) == (1, 256)
    for good in ("sensor_1", "eu-west-1:cpu", "température.salon", "温度"):
        assert re.fullmatch(series["pattern"], good) and check_series_id(good)
    for bad in ("a/b", "a b", "a?b"):
        assert not re.fullmatch(series["pattern"], bad)
    version = parameters["version"]["pattern"]
    for text in ("1", "17", "007", "latest", "LATEST", ""):
        assert re.fullmatch(version, text)
        parse_version(text)
    for text in ("0", "-1", "1.5", "x"):
        assert not re.fullmatch(version, text)
        try:
            parse_version(text)
        except InvalidInput:
            pass
        else:
            raise AssertionError(f"{text!r} was accepted")


def test_every_reference_in_the_schema_resolves(client: TestClient) -> None:
    # A dangling $ref broke ReDoc ("Invalid reference token: BulkRequest"), which only
    # the browser test showed; this says which one, without a browser.
    import json
    import re

    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    references = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert references and sorted(references - set(components)) == []
