from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.plotting import downsample_minmax
from anomaly_api.settings import Settings
from tests.conftest import CONTRACT_FIT

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_is_a_png(client: TestClient) -> None:
    client.post("/fit/sensor_1", json=CONTRACT_FIT)
    for path in ("/plot/sensor_1", "/plot/sensor_1?version=1", "/plot?series_id=sensor_1"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG)
    assert client.get("/plot/sensor_1?version=2").status_code == 404


def test_plot_of_a_large_one_sided_series(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 200_000)
    values[1234] = 40
    body = {
        "timestamps": list(range(200_000)),
        "values": values.tolist(),
        "direction": "upper",
    }
    assert client.post("/fit/big", json=body).status_code == 200
    response = client.get("/plot/big")
    assert response.status_code == 200
    assert response.content.startswith(PNG)


def test_plot_without_stored_points_says_why(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/m.db", training_points_cap=0)
    with TestClient(create_app(settings)) as client:
        client.post("/fit/s", json=CONTRACT_FIT)
        response = client.get("/plot/s")
        assert response.status_code == 422
        assert "ANOMALY_TRAINING_POINTS_CAP" in response.json()["detail"]


def test_downsampling_keeps_extremes_and_bounds_size() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 1_000_000)
    values[777_777] = 99.0
    values[123_456] = -99.0
    timestamps = np.arange(values.size, dtype=np.int64)
    shown_ts, shown = downsample_minmax(timestamps, values, 4000)
    assert shown.size <= 4000
    assert shown.max() == 99.0 and shown.min() == -99.0
    assert bool(np.all(np.diff(shown_ts) > 0))
