from __future__ import annotations

import orjson

from anomaly_api.api.schemas import PredictResponse, prediction_json
from anomaly_api.registry import Prediction


def test_hand_serialized_prediction_matches_the_documented_schema() -> None:
    prediction = Prediction(
        series_id="s",
        version=3,
        detector="zscore",
        threshold=3.0,
        value=18.0,
        anomaly=True,
        score=0.6,
        expected=11.4,
        lower=None,
        upper=17.5,
        direction="above",
    )
    body = PredictResponse.model_validate_json(prediction_json(prediction, 1691000240))
    assert body.model_version == "3"
    assert set(orjson.loads(prediction_json(prediction, 1))) == set(PredictResponse.model_fields)
