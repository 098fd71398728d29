"""The ``incident`` marker is the same whichever way the points arrive: one predict at a
time, a batch, or a bulk request (the zscore lane and the general one)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

START = 1_691_000_000


def fit_body(detector: str) -> dict[str, object]:
    rng = np.random.default_rng(1)
    times = START + 300 * np.arange(600)
    values = 50 + 5 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 1, times.size)
    return {"timestamps": times.tolist(), "values": values.tolist(), "detector": detector}


def stream() -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(2)
    times = START + 300 * np.arange(600, 900)
    values = 50 + 5 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 1, times.size)
    values[40:46] += 40.0  # a run far above: one incident
    values[120] -= 40.0  # a dip, the other side: another
    values[200:204] += 400.0  # far worse than the first: escalated
    return times.tolist(), values.tolist()


@pytest.mark.parametrize("detector", ["zscore", "adaptive", "seasonal"])
def test_single_batch_and_bulk_mark_the_same_incidents(client: TestClient, detector: str) -> None:
    for series_id in ("single", "batch", "bulk"):
        response = client.post(f"/fit/{series_id}", json=fit_body(detector))
        assert response.status_code == 200, response.text
    times, values = stream()
    answers = [
        client.post("/predict/single", json={"timestamp": t, "value": v}).json()
        for t, v in zip(times, values, strict=True)
    ]
    single = [answer["incident"] for answer in answers]
    batch = client.post("/predict/batch/batch", json={"timestamps": times, "values": values})
    assert batch.status_code == 200, batch.text
    bulk = [
        client.post("/predict", json=[{"series_id": "bulk", "timestamp": t, "value": v}]).json()[
            "results"
        ][0]["incident"]
        for t, v in zip(times, values, strict=True)
    ]
    assert batch.json()["incident"] == single
    assert bulk == single
    assert single[40] == "new" and single[41] == "ongoing"
    assert single[120] == "new"
    assert single[200] == "new"
    assert single.count("new") <= 6
    assert all(
        (mark is None) == (not a["anomaly"]) for mark, a in zip(single, answers, strict=True)
    )
