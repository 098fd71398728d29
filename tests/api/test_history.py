"""``GET /series/{id}/points`` returns exactly what the live path answered, point by
point, saved or not yet, for a time range, page by page, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_api, create_app
from anomaly_api.settings import Settings

START = 1_700_000_000
FIELDS = (
    "timestamp",
    "value",
    "model_version",
    "score",
    "anomaly",
    "incident",
    "expected",
    "lower",
    "upper",
)


def _fit(client: TestClient, series_id: str = "s", **extra: Any) -> None:
    rng = np.random.default_rng(2)
    body = {
        "timestamps": [START - 60 * (500 - i) for i in range(500)],
        "values": rng.normal(10, 1, 500).round(3).tolist(),
        **extra,
    }
    assert client.post(f"/fit/{series_id}", json=body).status_code == 200


def _stream(client: TestClient, count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    answers = []
    for i in range(count):
        value = 30.0 if i % 10 == 9 else round(float(rng.normal(10, 1)), 3)
        answer = client.post("/predict/s", json={"timestamp": START + 60 * i, "value": value})
        assert answer.status_code == 200
        answers.append(answer.json())
    return answers


def _expected(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: answer[name] for name in FIELDS} for answer in answers]


def test_the_points_read_back_are_what_was_answered(settings: Settings) -> None:
    app = create_api(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        registry = app.state.registry
        _check_read_back(client, registry)


def _check_read_back(client: TestClient, registry: Any) -> None:
    _fit(client, detector="robust")
    answers = _stream(client, 40)
    # At once (not yet saved: held by this process), then after a save.
    for saved in (False, True):
        page = client.get("/series/s/points").json()
        assert page["series_id"] == "s" and page["next_after"] is None
        assert page["points"] == _expected(answers), saved
        registry.streams.flush()
    assert sum(answer["anomaly"] for answer in answers) >= 4
    stream = client.get("/series/s").json()["stream"]
    flagged = sum(answer["anomaly"] for answer in answers)
    assert stream["last_score"] == answers[-1]["score"]
    assert stream["anomalies_last_hour"] == stream["anomalies_last_day"] == flagged
    opened = sum(answer["incident"] == "new" for answer in answers)
    assert opened >= 1 and stream["incidents_last_day"] == opened
    assert any(answer["incident"] == "ongoing" for answer in answers)


def test_pages_windows_anomalies_and_csv(client: TestClient) -> None:
    _fit(client)
    answers = _expected(_stream(client, 30))
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        query = {"limit": 7} if after is None else {"limit": 7, "after": after}
        page = client.get("/series/s/points", params=query).json()
        seen += page["points"]
        after = page["next_after"]
        if after is None:
            break
    assert seen == answers
    window = client.get(
        "/series/s/points", params={"from": START + 60 * 5, "to": START + 60 * 9}
    ).json()["points"]
    assert window == answers[5:10]
    iso = client.get(
        "/series/s/points", params={"from": "2023-11-14T22:18:20Z", "to": START + 60 * 6}
    ).json()["points"]
    assert iso == answers[5:7]  # 2023-11-14T22:18:20Z is START + 300
    flagged = client.get("/series/s/points", params={"anomalies_only": "true"}).json()
    assert flagged["points"] == [point for point in answers if point["anomaly"]]
    text = client.get("/series/s/points", params={"format": "csv", "limit": 10})
    assert text.headers["content-type"].startswith("text/csv")
    assert text.headers["x-next-after"] == str(answers[9]["timestamp"])
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [int(row["timestamp"]) for row in rows] == [p["timestamp"] for p in answers[:10]]
    assert [float(row["score"]) for row in rows] == [p["score"] for p in answers[:10]]


def test_unknown_series_and_bad_times_are_refused(client: TestClient) -> None:
    assert client.get("/series/nobody/points").status_code == 404
    _fit(client)
    bad = client.get("/series/s/points", params={"from": "yesterday"})
    assert bad.status_code == 422 and "from" in bad.text
    assert client.get("/series/s/points", params={"limit": 0}).status_code == 422


def test_a_hundred_thousand_points_page_through(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'm.db'}", stream_history_points=200_000
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        _fit(client)
        rng = np.random.default_rng(4)
        answered: dict[str, list[Any]] = {"timestamps": [], "score": []}
        for part in range(4):
            stamps = [START + 60 * (25_000 * part + i) for i in range(25_000)]
            values = rng.normal(10, 1, 25_000).round(3).tolist()
            batch = client.post("/predict/s/batch", json={"timestamps": stamps, "values": values})
            assert batch.status_code == 200, batch.text
            answered["timestamps"] += stamps
            answered["score"] += batch.json()["score"]
        stamps, scores, after = [], [], None
        while True:
            params: dict[str, Any] = {"limit": 10_000}
            if after is not None:
                params["after"] = after
            page = client.get("/series/s/points", params=params).json()
            stamps += [point["timestamp"] for point in page["points"]]
            scores += [point["score"] for point in page["points"]]
            after = page["next_after"]
            if after is None:
                break
        assert stamps == answered["timestamps"]
        assert scores == answered["score"]


def test_the_retention_sweep_keeps_the_history_window(settings: Settings) -> None:
    from anomaly_api.quotas import NO_LIMITS
    from anomaly_api.registry.retention import RetentionSweep

    app = create_api(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        _fit(client)
        registry = app.state.registry
        for day in range(3):  # a point a day, each saved on its own
            stamp = START + 86_400 * day
            assert (
                client.post("/predict/s", json={"timestamp": stamp, "value": 10}).status_code == 200
            )
            registry.streams.flush()
        RetentionSweep(registry.store, NO_LIMITS, history_s=1.5 * 86_400).sweep()
        kept = client.get("/series/s/points").json()["points"]
        assert [point["timestamp"] for point in kept] == [START + 86_400, START + 2 * 86_400]
