"""Azure's paths as clients send them (prefixes, ``//``, ``changePoint``), and every
answer on them JSON with ``x-ms-error-code``, whichever layer gave it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.api.azure.surface import canonical, error_body
from anomaly_api.auth import digest, new_key
from anomaly_api.settings import Settings
from anomaly_api.storage import open_store
from tests.azure.fixtures import daily_series

BODY = {"series": daily_series(), "granularity": "daily"}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/anomalydetector/v1.1/timeseries/entire/detect", ("v1.1", "entire")),
        ("//anomalydetector/v1.1/timeseries/last/detect", ("v1.1", "last")),
        ("/ok//anomalydetector/v1.0/timeseries/changePoint/detect", ("v1.0", "changepoint")),
        ("/a/b/anomalydetector/v1.1-preview.1/timeseries/LAST/detect/", ("v1.1-preview.1", "last")),
        ("/anomalydetector/v1.1/multivariate/models", None),
    ],
)
def test_paths_are_read_as_azure_clients_send_them(path: str, found: object) -> None:
    assert canonical(path) == found


def test_other_layers_errors_get_azures_shapes() -> None:
    assert error_body(401, b'{"detail": "no key"}') == (
        b'{"error":{"code":"401","message":"no key"}}',
        b"401",
    )
    assert error_body(415, b'{"detail": "send JSON"}') == (
        b'{"code":"BadArgument","message":"send JSON"}',
        b"BadArgument",
    )
    flat = b'{"code":"InvalidSeries","message":"m"}'
    assert error_body(400, flat) == (flat, b"InvalidSeries")
    assert error_body(500, b"oops")[0] == b'{"error":{"code":"500","message":"oops"}}'


def test_every_path_variant_answers(client: TestClient) -> None:
    for path in (
        "/anomalydetector/v1.1/timeseries/entire/detect",
        "http://127.0.0.1//anomalydetector/v1.1/timeseries/entire/detect",  # a full URL: a
        # path starting with // alone would name a host
        "/prefix/anomalydetector/v1.1-preview/timeseries/last/detect",
        "/anomalydetector/v1.0/timeseries/changePoint/detect",
    ):
        answer = client.post(path, json=BODY)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"] == "application/json"
    charset = {"Content-Type": "application/json; charset=utf-8"}
    answer = client.post("/anomalydetector/v1.0/timeseries/last/detect", json=BODY, headers=charset)
    assert answer.status_code == 200 and "severity" not in answer.json()


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/anomalydetector/v9/timeseries/entire/detect", 404, "404"),
        ("POST", "/anomalydetector/v1.1/timeseries/sideways/detect", 404, "404"),
        ("GET", "/anomalydetector/v1.1/timeseries/entire/detect", 405, "BadArgument"),
    ],
)
def test_unknown_routes_and_methods_answer_json(
    client: TestClient, method: str, path: str, status: int, code: str
) -> None:
    answer = client.request(method, path, json=BODY)
    assert answer.status_code == status
    assert answer.headers["x-ms-error-code"] == code
    assert answer.json()


def test_keys_are_read_from_the_subscription_header(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    key, reader = new_key(), new_key()
    store = open_store(database)
    try:
        store.create_key("client", digest(key), ("predict",))
        store.create_key("reader", digest(reader), ("read",))
    finally:
        store.close()
    settings = Settings(database_url=database, auth="required")
    path = "/anomalydetector/v1.1/timeseries/last/detect"
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as keyed:
        missing = keyed.post(path, json=BODY)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "401"
        assert missing.headers["x-ms-error-code"] == "401"
        wrong = keyed.post(path, json=BODY, headers={"Ocp-Apim-Subscription-Key": "adk_nope"})
        assert wrong.status_code == 401
        scope = keyed.post(path, json=BODY, headers={"Ocp-Apim-Subscription-Key": reader})
        assert scope.status_code == 403 and "predict" in scope.json()["error"]["message"]
        good = keyed.post(path, json=BODY, headers={"Ocp-Apim-Subscription-Key": key})
        assert good.status_code == 200 and good.json()["suggestedWindow"] == 29


def test_change_points_from_the_native_api(client: TestClient) -> None:
    values = [10, 11, 9, 10, 11, 10, 9, 11, 10, 20, 21, 19, 20, 21, 20, 19, 21, 20]
    stamps = list(range(1_691_000_000, 1_691_000_000 + 60 * len(values), 60))
    answer = client.post(
        "/changepoints",
        json={"timestamps": stamps[::-1], "values": values[::-1], "window": 4, "period": 0},
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["period"] == 0 and len(found["confidence"]) == len(values)
    # Answered in the order given (here reversed): the change starts at the 10th point.
    assert [i for i, flag in enumerate(found["is_change_point"][::-1]) if flag] == [9]
    bad = client.post("/changepoints", json={"timestamps": stamps, "values": values, "window": 2})
    assert bad.status_code == 422 and "window" in bad.text
