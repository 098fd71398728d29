"""Azure Anomaly Detector's published Python clients, pointed at a real ``anomaly-api
serve`` with API keys required, as a user moving off Azure would: only the endpoint
changes. ``azure-ai-anomalydetector`` 3.0.0b6 (API v1.1), 3.0.0b5 (v1.1-preview.1; in
its own directory beside 3.0.0b6, run in a subprocess) and the legacy
``azure-cognitiveservices-anomalydetector`` 0.3.1 (v1.0, ``changePoint``): every
operation, and every error case of the contract's table, deserialised by the client with
the right values and codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.ai.anomalydetector.models import (
    TimeGranularity,
    TimeSeriesPoint,
    UnivariateChangePointDetectionOptions,
    UnivariateDetectionOptions,
)
from azure.cognitiveservices.anomalydetector import AnomalyDetectorClient as LegacyClient
from azure.cognitiveservices.anomalydetector.models import APIErrorException, Point, Request
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from msrest.authentication import CognitiveServicesCredentials

from anomaly_api.auth import digest, new_key
from anomaly_api.bench_server import ServerProcess
from anomaly_api.storage import open_store
from tests.azure.fixtures import DAILY_VALUES, MONTHLY_VALUES, daily_series, monthly_series

pytestmark = pytest.mark.slow

B5 = Path(sys.executable).parent.parent / "azure-sdk-3.0.0b5"
MONTHS = [datetime(1972 + i // 12, i % 12 + 1, 1, tzinfo=UTC) for i in range(48)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server requiring keys, and a key with the predict scope."""
    folder = tmp_path_factory.mktemp("azure")
    key = new_key()
    store = open_store(f"sqlite:///{folder / 'm.db'}")
    try:
        store.create_key("azure-client", digest(key), ("predict",))
    finally:
        store.close()
    env = {"ANOMALY_AUTH": "required"}
    with ServerProcess(folder / "m.db", log=folder / "server.log", env=env) as server:
        yield server.url, key


def _client(endpoint: str, key: str) -> AnomalyDetectorClient:
    # A trailing slash, as the Azure portal shows endpoints: the SDK then sends '//'.
    return AnomalyDetectorClient(endpoint + "/", AzureKeyCredential(key), retry_total=0)


def _monthly_options(**extra: Any) -> UnivariateDetectionOptions:
    series = [
        TimeSeriesPoint(timestamp=t, value=v) for t, v in zip(MONTHS, MONTHLY_VALUES, strict=True)
    ]
    return UnivariateDetectionOptions(
        series=series, granularity=TimeGranularity.MONTHLY, sensitivity=95, **extra
    )


def test_sdk_3_0_0b6_every_operation(served: tuple[str, str]) -> None:
    url, key = served
    client = _client(url, key)
    entire = client.detect_univariate_entire_series(_monthly_options(max_anomaly_ratio=0.25))
    assert entire.period == 12 and isinstance(entire.period, int)
    assert entire.severity is not None and entire.upper_margins is not None
    assert entire.lower_margins is not None
    assert len(entire.expected_values) == len(entire.is_anomaly) == len(entire.severity) == 48
    assert [i for i, flag in enumerate(entire.is_anomaly) if flag] == [25]
    assert entire.is_positive_anomaly[25] and not entire.is_negative_anomaly[25]
    assert 0 < entire.severity[25] <= 1 and entire.severity[0] == 0
    assert entire.upper_margins[0] > 0 and entire.lower_margins[0] > 0
    last = client.detect_univariate_last_point(
        _monthly_options(impute_mode="fixed", impute_fixed_value=800)
    )
    assert (last.period, last.suggested_window, last.is_anomaly) == (12, 49, False)
    assert isinstance(last.suggested_window, int) and last.severity == 0
    change = client.detect_univariate_change_point(
        UnivariateChangePointDetectionOptions(
            series=[
                TimeSeriesPoint(timestamp=p["timestamp"], value=p["value"]) for p in daily_series()
            ],
            granularity="daily",
            stable_trend_window=5,
            threshold=0.9,
        )
    )
    assert change.is_change_point is not None and change.confidence_scores is not None
    assert len(change.is_change_point) == len(change.confidence_scores) == 47
    assert all(0 <= score <= 1 for score in change.confidence_scores)
    # A dict body, values as strings and explicit nulls: what the SDK's own test sent.
    raw = client.detect_univariate_entire_series(
        {"series": daily_series(as_strings=True), "granularity": "daily", "period": None}
    )
    assert raw.period == 7 and len(raw.is_anomaly) == 47


def test_sdk_3_0_0b6_answers_every_error_with_its_code(served: tuple[str, str]) -> None:
    url, key = served
    client = _client(url, key)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"granularity": "daily"}, "RequiredSeries"),
        ({"series": daily_series(), "granularity": "Daily"}, "InvalidGranularity"),
        ({"series": daily_series(), "granularity": "daily", "customInterval": 0}, "InvalidCustomInterval"),
        ({"series": daily_series(), "granularity": "daily", "period": -1}, "InvalidPeriod"),
        ({"series": daily_series(), "maxAnomalyRatio": 0.6}, "InvalidModelArgument"),
        ({"series": daily_series(), "sensitivity": 200}, "InvalidModelArgument"),
        ({"series": daily_series(), "granularity": "daily", "imputeMode": "x"}, "InvalidImputeMode"),
        ({"series": daily_series(), "granularity": "daily", "imputeMode": "fixed"}, "InvalidImputeFixedValue"),
        ({"series": None}, "BadArgument"),
        ({"series": "x"}, "BadArgument"),
        ({"series": daily_series()[:5]}, "InvalidSeries"),
        ({"series": [{"value": 1}] * 8641}, "InvalidSeries"),
        ({"series": [*daily_series()[:-1], {"timestamp": "x", "value": 1}], "granularity": "daily"}, "BadArgument"),
        ({"series": [*daily_series()[:-1], {"value": 1e200}]}, "InvalidSeries"),
        ({"series": [*daily_series()[:-1], {"value": None}]}, "BadArgument"),
        ({"series": daily_series()[::-1], "granularity": "daily"}, "InvalidSeries"),
        ({"series": [*daily_series(), daily_series()[-1]], "granularity": "daily"}, "InvalidSeries"),
        ({"series": daily_series(), "granularity": "hourly", "customInterval": 5}, "InvalidSeries"),
        ({"series": daily_series(), "granularity": "daily", "period": 30}, "InvalidModelArgument"),
    ]  # fmt: skip
    for body, code in cases:
        with pytest.raises(HttpResponseError) as refused:
            client.detect_univariate_entire_series(body)
        error = refused.value
        assert error.status_code == 400, (body, error)
        assert error.model is not None and error.model.code == code, (code, error.message)
        assert error.error is not None and error.error.code == code
        assert f"({code})" in error.message
    change_cases = [
        ({"series": daily_series()}, "RequiredGranularity"),
        ({"series": daily_series(), "granularity": "daily", "threshold": 2}, "InvalidModelArgument"),
        ({"series": daily_series(), "granularity": "daily", "stableTrendWindow": 40}, "InvalidModelArgument"),
    ]  # fmt: skip
    for body, code in change_cases:  # type: ignore[assignment]
        with pytest.raises(HttpResponseError) as refused:
            client.detect_univariate_change_point(body)
        assert refused.value.model is not None and refused.value.model.code == code
    with pytest.raises(HttpResponseError) as refused:
        client.detect_univariate_last_point(b"{not json")  # type: ignore[call-overload]
    assert refused.value.model is not None and refused.value.model.code == "InvalidJsonFormat"


def test_a_missing_or_wrong_key_is_a_401_the_sdks_understand(served: tuple[str, str]) -> None:
    url, _ = served
    with pytest.raises(ClientAuthenticationError) as refused:
        _client(url, "adk_wrong").detect_univariate_last_point(_monthly_options())
    assert refused.value.status_code == 401
    legacy: Any = LegacyClient(url, CognitiveServicesCredentials("adk_wrong"))
    with pytest.raises(APIErrorException) as legacy_refused:
        legacy.last_detect(Request(series=[Point(timestamp=t, value=v) for t, v in zip(MONTHS, MONTHLY_VALUES, strict=True)], granularity="monthly"))  # fmt: skip
    assert legacy_refused.value.response.status_code == 401


def test_the_legacy_sdk_0_3_1_every_operation(served: tuple[str, str]) -> None:
    url, key = served
    client: Any = LegacyClient(url, CognitiveServicesCredentials(key))
    points = [Point(timestamp=t, value=v) for t, v in zip(MONTHS, MONTHLY_VALUES, strict=True)]
    entire = client.entire_detect(Request(series=points, granularity="monthly", sensitivity=95))
    assert entire.period == 12 and len(entire.expected_values) == 48
    assert [i for i, flag in enumerate(entire.is_anomaly) if flag] == [25]
    last = client.last_detect(Request(series=points, granularity="monthly", sensitivity=95))
    assert (last.period, last.suggested_window, last.is_anomaly) == (12, 49, False)
    from azure.cognitiveservices.anomalydetector.models import ChangePointDetectRequest

    days = [Point(timestamp=datetime(2018, 3, 1 + i, tzinfo=UTC) if i < 31 else datetime(2018, 4, i - 30, tzinfo=UTC), value=v) for i, v in enumerate(DAILY_VALUES)]  # fmt: skip
    change = client.change_point_detect(ChangePointDetectRequest(series=days, granularity="daily"))
    assert len(change.is_change_point) == 47 and len(change.confidence_scores) == 47
    with pytest.raises(APIErrorException) as refused:
        client.entire_detect(Request(series=points[:5], granularity="monthly"))
    legacy_error: Any = refused.value.error
    assert legacy_error.code == "InvalidSeries"
    assert "at least 12 points" in legacy_error.message


_B5_SCRIPT = """
import json, sys
from datetime import datetime, timezone
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
import azure.ai.anomalydetector as sdk
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.ai.anomalydetector.models import ChangePointDetectRequest, DetectRequest, TimeSeriesPoint

url, key, values = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = AnomalyDetectorClient(AzureKeyCredential(key), url, retry_total=0)
months = [datetime(1972 + i // 12, i % 12 + 1, 1, tzinfo=timezone.utc) for i in range(48)]
series = [TimeSeriesPoint(timestamp=t, value=v) for t, v in zip(months, values)]
entire = client.detect_entire_series(DetectRequest(series=series, granularity="monthly", sensitivity=95))
last = client.detect_last_point(DetectRequest(series=series, granularity="monthly", sensitivity=95))
change = client.detect_change_point(ChangePointDetectRequest(series=series, granularity="monthly"))
try:
    client.detect_entire_series(DetectRequest(series=series[:3], granularity="monthly"))
    error = None
except HttpResponseError as exc:
    error = {"status": exc.status_code, "model": exc.model.as_dict() if exc.model else None}
print(json.dumps({
    "version": sdk.__version__, "file": sdk.__file__,
    "entire": {"period": entire.period, "anomalies": [i for i, a in enumerate(entire.is_anomaly) if a],
               "severity": len(entire.severity or [])},
    "last": {"period": last.period, "window": last.suggested_window, "anomaly": last.is_anomaly},
    "change": len(change.is_change_point), "error": error,
}))
"""


def test_sdk_3_0_0b5_on_api_v1_1_preview_1(served: tuple[str, str]) -> None:
    url, key = served
    assert B5.is_dir(), f"{B5} missing: `make install-dev` puts the 3.0.0b5 client there"
    environment = {**os.environ, "PYTHONPATH": str(B5)}
    result = subprocess.run(
        [sys.executable, "-c", _B5_SCRIPT, url, key, json.dumps(MONTHLY_VALUES)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert found["version"] == "3.0.0b5" and str(B5) in found["file"]
    assert found["entire"] == {"period": 12, "anomalies": [25], "severity": 48}
    assert found["last"] == {"period": 12, "window": 49, "anomaly": False}
    assert found["change"] == 48
    assert found["error"]["status"] == 400
    assert found["error"]["model"]["code"] == "InvalidSeries"


def test_plain_rest_fixtures_keep_azures_shapes_and_types(served: tuple[str, str]) -> None:
    import urllib.request

    url, key = served

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": key},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
            parsed: dict[str, Any] = json.loads(answer.read())
            return parsed

    body = {"series": monthly_series(), "granularity": "monthly", "sensitivity": 95}
    v10 = post("/anomalydetector/v1.0/timeseries/entire/detect", body)
    assert set(v10) == {"period", "expectedValues", "upperMargins", "lowerMargins",
                        "isAnomaly", "isNegativeAnomaly", "isPositiveAnomaly"}  # fmt: skip
    v11 = post("/anomalydetector/v1.1/timeseries/entire/detect", body)
    assert set(v11) == set(v10) | {"severity"}
    for name in set(v11) - {"period"}:
        assert len(v11[name]) == 48
    assert all(isinstance(flag, bool) for flag in v11["isAnomaly"])
    assert type(v11["period"]) is int
    last = post("/anomalydetector/v1.1/timeseries/last/detect", body)
    assert set(last) == {"period", "suggestedWindow", "expectedValue", "upperMargin",
                         "lowerMargin", "isAnomaly", "isNegativeAnomaly", "isPositiveAnomaly",
                         "severity"}  # fmt: skip
    assert type(last["suggestedWindow"]) is int and last["suggestedWindow"] == 49
    daily = post("/prefix/anomalydetector/v1.0/timeseries/last/detect", {"series": daily_series(), "granularity": "daily"})  # fmt: skip
    assert (daily["period"], daily["suggestedWindow"]) == (7, 29) and "severity" not in daily
