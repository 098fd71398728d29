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


def test_plot_of_values_near_the_float_limit_is_drawn_scaled(client: TestClient) -> None:
    """Matplotlib's axis arithmetic overflows near 1.8e308: such a series is drawn in
    units of a power of ten instead of failing."""
    body = {
        "timestamps": [1_691_000_000 + 60 * i for i in range(10)],
        "values": [1.7e308 if i % 2 else 0.0 for i in range(10)],
        "detector": "robust",
    }
    assert client.post("/fit/huge", json=body).status_code == 200
    response = client.get("/plot/huge")
    assert response.status_code == 200
    assert response.content.startswith(PNG)


def test_plot_without_stored_points_says_why(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/m.db", training_points_cap=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
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


def test_a_plot_of_an_incident_shows_the_model_s_band_and_rings_each_new_incident() -> None:
    """Two incidents eight hours apart in the plotted data: both are ringed, and the
    band drawn is the model's own, the same as for the data without the first one."""
    from anomaly_api.detectors import AdaptiveDetector, Series
    from anomaly_api.plotting import PlotTitle, plot_figure

    rng = np.random.default_rng(8)
    times = 1_691_000_000 + 300 * np.arange(288 * 5)
    calm = 50 + 10 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 1, times.size)
    values = calm.copy()
    values[1000:1003] -= 12.0  # a dip
    values[1096:1120] += 9.0  # eight hours later, two hours 9 sigma higher
    train = 288 * 3
    detector = AdaptiveDetector().fit(Series.from_arrays(times[:train], calm[:train]))
    series = Series.from_arrays(times[train:], values[train:])
    scores = detector.score(series.timestamps, series.values)
    figure = plot_figure(series, scores, PlotTitle("s", 1, "adaptive", 1.5))
    legend = figure.axes[0].get_legend()
    assert legend is not None
    assert "incident opened (2)" in [text.get_text() for text in legend.get_texts()]
    ringed = next(
        c for c in figure.axes[0].collections if str(c.get_label()).startswith("incident")
    )
    offsets = np.asarray(ringed.get_offsets())
    assert sorted(offsets[:, 1].tolist()) == sorted([float(values[1000]), float(values[1096])])
    # The band is the model's expectation: after the dip it is the band without it.
    before = np.arange(times.size)[train:] < 1003
    without = detector.score(series.timestamps, np.where(before, calm[train:], values[train:]))
    after = 1010 - train
    np.testing.assert_array_equal(scores.upper[after:], without.upper[after:])
    np.testing.assert_array_equal(scores.lower[after:], without.lower[after:])


def test_the_plot_shows_what_was_scored_since_with_period_and_parameters(
    client: TestClient,
) -> None:
    import numpy as np

    start, count = 1_700_000_000, 2016
    rng = np.random.default_rng(1)
    values = 100 + 10 * np.sin(np.arange(count) * 2 * np.pi / 288) + rng.normal(0, 1, count)
    stamps = [start + 300 * i for i in range(count)]
    fit = {"timestamps": stamps, "values": values.round(3).tolist(), "detector": "seasonal"}
    assert client.post("/fit/web", json={**fit, "retrain": False}).status_code == 200
    for i in range(60):
        value = 100 + 10 * np.sin((count + i) * 2 * np.pi / 288) + (40 if i == 30 else 0)
        point = {"timestamp": start + 300 * (count + i), "value": round(float(value), 3)}
        assert client.post("/predict/web", json=point).status_code == 200
    svg = client.get("/plot/web", params={"format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert "period: 1 day" in svg.text and "threshold 1.5" in svg.text
    assert "scored since (60)" in svg.text and "flagged when scored (1)" in svg.text
    assert "incident opened when scored (1)" in svg.text
    plain = client.get("/plot/web", params={"format": "svg", "history": "false"}).text
    assert "scored since" not in plain
    window = client.get("/plot/web", params={"format": "svg", "from": start + 300 * (count + 40)})
    assert "scored since (20)" in window.text
    png = client.get("/plot/web", params={"to": start + 300 * 100})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get("/plot/web", params={"from": "someday"}).status_code == 422
