"""``POST /predict``: points of many series in one request."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import CONTRACT_FIT

FIT = {"timestamps": list(range(1691000000, 1691006000, 60)), "values": [10.0, 12.0] * 50}
SINGLE_FIELDS = (
    "anomaly", "model_version", "series_id", "timestamp", "value", "expected", "lower",
    "upper", "score", "direction", "threshold", "detector", "observed", "not_observed",
    "incident",
)  # fmt: skip


def fit(client: TestClient, *series: str, **extra: object) -> None:
    for series_id in series:
        assert client.post(f"/fit/{series_id}", json={**FIT, **extra}).status_code == 200


def test_each_point_is_answered_as_its_single_predict(client: TestClient) -> None:
    fit(client, "a", "b", "single-a", "single-b")
    rng = np.random.default_rng(3)
    points = []
    for step in range(30):
        for series_id in ("a", "b"):
            value = float(rng.normal(11, 3)) + (40 if step == 17 else 0)
            points.append(
                {"series_id": series_id, "timestamp": 1691006000 + 60 * step, "value": value}
            )
    response = client.post("/predict", json=points)
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["errors"]) == (60, 0)
    for point, answer in zip(points, body["results"], strict=True):
        single = client.post(
            f"/predict/single-{point['series_id']}",
            json={"timestamp": point["timestamp"], "value": point["value"]},
        ).json()
        assert set(answer) == set(SINGLE_FIELDS)
        assert {**answer, "series_id": None} == {**single, "series_id": None}
        assert answer["series_id"] == point["series_id"]
    assert any(answer["anomaly"] for answer in body["results"])


def test_the_history_keeps_the_answers_of_points_scored_together(client: TestClient) -> None:
    # One point of each zscore series per request: scored in arrays (registry.bulk), which
    # packs the points it keeps itself: the incident markers must be among them.
    fit(client, "a", "b")
    answers: list[dict[str, object]] = []
    for step in range(12):
        value = 60.0 if step in (4, 5) else 11.0
        points = [
            {"series_id": name, "timestamp": 1691006000 + 60 * step, "value": value}
            for name in ("a", "b")
        ]
        response = client.post("/predict", json=points)
        assert response.status_code == 200
        answers += response.json()["results"]
    assert [a["incident"] for a in answers if a["series_id"] == "a"][4:6] == ["new", "ongoing"]
    for series_id in ("a", "b"):
        kept = client.get(f"/series/{series_id}/points").json()["points"]
        answered = [a for a in answers if a["series_id"] == series_id]
        fields = ("timestamp", "score", "anomaly", "incident", "expected", "lower", "upper")
        assert [[p[f] for f in fields] for p in kept] == [[a[f] for f in fields] for a in answered]


def test_one_bad_point_does_not_fail_the_others(client: TestClient) -> None:
    fit(client, "a")
    points = [
        {"series_id": "a", "timestamp": 1691006000, "value": 11.0},
        {"series_id": "nope", "timestamp": 1691006000, "value": 11.0},
        {"series_id": "a", "timestamp": 1691006060, "value": 11.0, "version": "7"},
        {"series_id": "bad/id", "timestamp": 1691006060, "value": 11.0},
        {"series_id": "a", "timestamp": "yesterday", "value": 11.0},
        {"series_id": "a", "timestamp": 1691006060, "value": 11.0, "version": "x"},
        {"series_id": "a", "timestamp": 1691006000, "value": 11.0},
        {"series_id": "a", "timestamp": 1691006120, "value": 11.0, "version": 1},
    ]
    body = client.post("/predict", json=points).json()
    assert body["count"] == 8 and body["errors"] == 5
    results = body["results"]
    assert results[0]["observed"] is True
    errors = [(r["error"]["status"], r["series_id"]) for r in results[1:6]]
    assert errors == [(404, "nope"), (404, "a"), (422, "bad/id"), (422, "a"), (422, "a")]
    assert "version 7" in results[2]["error"]["detail"]
    assert "timestamp" in results[4]["error"]["detail"]
    assert results[6]["not_observed"] == "repeated_timestamp"
    assert (results[7]["model_version"], results[7]["observed"]) == ("1", True)


def test_a_non_finite_value_is_that_point_s_error(client: TestClient) -> None:
    fit(client, "a")
    body = b'[{"series_id": "a", "timestamp": 1691006000, "value": NaN}, {"series_id": "a", "timestamp": 1691006000, "value": 1}]'
    answer = client.post("/predict", content=body).json()
    assert answer["errors"] == 1
    assert answer["results"][0]["error"]["status"] == 422
    assert "finite" in answer["results"][0]["error"]["detail"]
    assert answer["results"][1]["observed"] is True


def test_observe_false_remembers_nothing(client: TestClient) -> None:
    fit(client, "a", "ref")
    points = [{"series_id": "a", "timestamp": 1691006000 + 60 * i, "value": 30.0} for i in range(5)]
    what_if = client.post("/predict?observe=false", json=points).json()
    assert {r["not_observed"] for r in what_if["results"]} == {"what_if"}
    after = client.post("/predict/a", json={"timestamp": 1691006000, "value": 11}).json()
    ref = client.post("/predict/ref", json={"timestamp": 1691006000, "value": 11}).json()
    assert after["score"] == ref["score"] and after["observed"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"", 422, "empty"),
        (b"{}", 422, "JSON array"),
        (b"[1]", 422, "[0]"),
        (b'[{"series_id": "a", "timestamp": 1}]', 422, "[0].value"),
        (b'[{"series_id": "a", "timestamp": 1, "value": 1, "colour": "red"}]', 422, "colour"),
        (b"[", 422, "not valid JSON"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_item(
    client: TestClient, body: bytes, status: int, detail: str
) -> None:
    response = client.post("/predict", content=body)
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_the_contract_predict_route_is_untouched(client: TestClient) -> None:
    client.post("/fit/sensor_1", json=CONTRACT_FIT)
    answer = client.post("/predict/sensor_1", json={"timestamp": "1691000240", "value": 18}).json()
    assert answer["anomaly"] is True and answer["model_version"] == "1"
    assert "/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "retrain",
    [False, {"every": 4, "window": 50}, {"every": "5m", "window": "1h"}],
    ids=["no-retrain", "every-4-points", "every-5-minutes"],
)
def test_one_point_of_each_of_many_series_is_scored_together_as_one_by_one(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, retrain: object
) -> None:
    """The points that need only memory are scored in arrays: the answers must be the
    single predicts' to the bit, whatever each series' parameters and history, and a
    point that makes a retrain due must retrain as its single predict does."""
    rng = np.random.default_rng(11)
    series = [f"m{index}" for index in range(40)]
    for index, series_id in enumerate(series):
        params = {
            "threshold": float(rng.choice([1.0, 2.0, 3.0])),
            "direction": ["both", "upper", "lower"][index % 3],
        }
        values = rng.normal(50, rng.choice([0.0, 1.0, 5.0]), 60).tolist()
        body = {"timestamps": list(range(1691000000, 1691003600, 60)), "values": values}
        for name in (series_id, f"ref-{series_id}"):
            fit = {**body, "params": params, "retrain": retrain}
            assert client.post(f"/fit/{name}", json=fit).status_code == 200
    registry = client.app.state.registry  # type: ignore[attr-defined]
    singles = []
    original = registry.predict_cached

    def counted(*args: object, **kwargs: object) -> object:
        singles.append(args[0])
        return original(*args, **kwargs)

    for step in range(10):
        values = (50 + rng.normal(0, 8, len(series))).tolist()
        stamp = 1691003600 + 60 * step
        points = [
            {"series_id": s, "timestamp": stamp, "value": v}
            for s, v in zip(series, values, strict=True)
        ]
        if step:  # the first request makes every stream live (one by one)
            monkeypatch.setattr(registry, "predict_cached", counted)
        answer = client.post("/predict", json=points).json()
        monkeypatch.undo()
        assert answer["errors"] == 0
        for point, result in zip(points, answer["results"], strict=True):
            single = client.post(
                f"/predict/ref-{point['series_id']}",
                json={"timestamp": stamp, "value": point["value"]},
            ).json()
            assert {**result, "series_id": None} == {**single, "series_id": None}
    if retrain is False:
        assert singles == []  # after the first request, every point was scored together
    else:
        # The points that made a retrain due went alone; the others were scored together.
        assert 0 < len(singles) < 9 * len(series)
        versions = client.get(f"/series/{series[0]}").json()
        assert len(versions["versions"]) > 1


def test_points_scored_together_and_alone_in_one_request_are_all_answered(
    client: TestClient,
) -> None:
    """zscore series scored in arrays, another detector's series and an unknown series
    one by one: every point gets its answer, in the request's order."""
    fit(client, "z1", "z2", "ref-z1", "ref-z2")
    fit(client, "r1", "ref-r1", detector="robust")
    points = [
        {"series_id": series_id, "timestamp": 1691006000 + 60 * step, "value": 11.0 + step}
        for step in range(3)
        for series_id in ("z1", "r1", "unknown", "z2")
    ]
    for start in range(0, len(points), 4):  # one point of each series per request
        body = client.post("/predict", json=points[start : start + 4]).json()
        assert body["count"] == 4 and len(body["results"]) == 4
        assert body["errors"] == 1
        for point, result in zip(points[start : start + 4], body["results"], strict=True):
            assert result["series_id"] == point["series_id"]
            if point["series_id"] == "unknown":
                assert result["error"]["status"] == 404
                continue
            single = client.post(
                f"/predict/ref-{point['series_id']}",
                json={"timestamp": point["timestamp"], "value": point["value"]},
            ).json()
            assert {**result, "series_id": None} == {**single, "series_id": None}


def test_the_registry_takes_points_as_tuples_too(client: TestClient) -> None:
    fit(client, "t", "ref-t")
    registry = client.app.state.registry  # type: ignore[attr-defined]
    answers = registry.predict_many([("t", 1691006000, 11.0, None), ("t", 1691006060, 30.0, 1)])
    for answer, (stamp, value) in zip(
        answers, [(1691006000, 11.0), (1691006060, 30.0)], strict=True
    ):
        single = client.post("/predict/ref-t", json={"timestamp": stamp, "value": value}).json()
        assert {**answer.__dict__, "series_id": None} == {**single, "series_id": None}
    assert registry.predict_many([]) == []


def test_a_fractional_second_is_floored_as_a_single_predict_floors_it(client: TestClient) -> None:
    """Through the registry a timestamp may be a float: the bulk path must not learn
    1691006000.5 as news after 1691006000 (the single path floors it: a repeat)."""
    fit(client, "f", "ref-f")
    registry = client.app.state.registry  # type: ignore[attr-defined]
    for points in ([("f", 1691006000, 11.0, None)], [("f", 1691006000.5, 12.0, None)]):
        [answer] = registry.predict_many(points)
        [(_, stamp, value, _)] = points
        single = registry.predict("ref-f", value, stamp)
        assert {**answer.__dict__, "series_id": None} == {**single.__dict__, "series_id": None}
    assert answer.not_observed == "repeated_timestamp"
