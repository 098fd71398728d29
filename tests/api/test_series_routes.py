from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import CONTRACT_FIT

POINT = {"timestamp": "1691000240", "value": 18}


def test_series_detail_lists_versions(client: TestClient) -> None:
    for _ in range(3):
        client.post("/fit/sensor_1", json=CONTRACT_FIT)
    body = client.get("/series/sensor_1").json()
    assert body["series_id"] == "sensor_1"
    assert body["latest_version"] == "3"
    assert [v["version"] for v in body["versions"]] == ["1", "2", "3"]
    first = body["versions"][0]
    assert first["detector"] == "zscore"
    assert first["points_used"] == 5
    assert first["created_at"].endswith("Z")


def test_listing_is_paginated(client: TestClient) -> None:
    for index in range(7):
        client.post(f"/fit/s{index}", json=CONTRACT_FIT)
    ids: list[str] = []
    after = None
    while True:
        params = {"limit": 3} | ({"after": after} if after else {})
        page = client.get("/series", params=params).json()
        ids += [item["series_id"] for item in page["series"]]
        after = page["next_after"]
        if after is None:
            break
    assert ids == [f"s{index}" for index in range(7)]
    assert page["total"] == 7
    assert client.get("/series", params={"limit": 0}).status_code == 422


def test_delete_version_and_series(client: TestClient) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    client.post("/fit/s", json=CONTRACT_FIT)
    assert client.get("/series/s/versions/2").json()["version"] == "2"
    assert client.get("/series/s/versions/7").status_code == 404
    response = client.delete("/series/s/versions/2")
    assert response.status_code == 200
    assert client.post("/predict/s", json=POINT).json()["model_version"] == "1"
    assert client.delete("/series/s/versions/2").status_code == 404
    assert client.delete("/series/s/versions/x").status_code == 422
    assert client.delete("/series/s").json()["deleted_count"] == 1
    response = client.get("/series/s")
    assert response.status_code == 404
    assert "'s'" in response.json()["detail"]
    assert client.get("/healthcheck").json()["series_trained"] == 0
    assert client.post("/fit/s", json=CONTRACT_FIT).json()["version"] == "3"


def test_unknown_series_404s(client: TestClient) -> None:
    assert client.get("/series/nope").status_code == 404
    assert client.delete("/series/nope").status_code == 404
    assert client.get("/plot/nope").status_code == 404


def test_detectors_are_listed(client: TestClient) -> None:
    detectors = client.get("/detectors").json()
    zscore = next(d for d in detectors if d["name"] == "zscore")
    assert zscore["default"] is True
    assert {p["name"] for p in zscore["parameters"]} == {
        "threshold",
        "direction",
        "cooldown_seconds",
        "escalation",
    }


def test_a_series_versions_come_a_page_at_a_time(client: TestClient) -> None:
    for _ in range(5):
        assert client.post("/fit/paged", json=CONTRACT_FIT).status_code == 200
    seen, after, pages = [], 0, 0
    while True:
        answer = client.get(f"/series/paged?limit=2&after={after}").json()
        assert answer["latest_version"] == "5"
        seen += [version["version"] for version in answer["versions"]]
        pages += 1
        if answer["next_after"] is None:
            break
        after = answer["next_after"]
    assert seen == ["1", "2", "3", "4", "5"] and pages == 3
    whole = client.get("/series/paged").json()  # the default page holds them all
    assert [v["version"] for v in whole["versions"]] == seen and whole["next_after"] is None
    assert client.get("/series/paged?after=5").json()["versions"] == []
    assert client.get("/series/paged?limit=0").status_code == 422
    assert client.get("/series/paged?limit=1001").status_code == 422
    assert client.get("/series/nothing?after=3").status_code == 404


def test_a_listing_searches_ids_and_adds_stream_counters_when_asked(client: TestClient) -> None:
    for series_id in ("cpu-web", "CPU-db", "memory"):
        assert client.post(f"/fit/{series_id}", json=CONTRACT_FIT).status_code == 200
    later = {"timestamp": 1691000300, "value": 500}
    assert client.post("/predict/cpu-web", json=later).json()["incident"] == "new"
    plain = client.get("/series").json()
    assert all("stream" not in item for item in plain["series"])  # as before unless asked
    found = client.get("/series", params={"search": "cpu", "stream": "true"}).json()
    assert [item["series_id"] for item in found["series"]] == ["CPU-db", "cpu-web"]
    assert found["total"] == 3
    quiet, streamed = found["series"]
    assert quiet["stream"] is None
    detail = client.get("/series/cpu-web").json()["stream"]
    assert streamed["stream"] == detail
    assert (detail["anomalies_last_hour"], detail["incidents_last_day"]) == (1, 1)
    too_many = client.get("/series", params={"stream": "true", "limit": 101})
    assert too_many.status_code == 422 and "limit" in too_many.text
    assert client.get("/series", params={"search": ""}).status_code == 422
