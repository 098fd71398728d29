"""Fits per minute per key (``ANOMALY_QUOTA_FITS_PER_MINUTE``): a minute's worth at
once, then the refill rate; 429 with Retry-After beyond; other keys and other routes
unaffected."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.api.asgi.quotas import FitQuota
from anomaly_api.auth import digest, new_key
from anomaly_api.settings import Settings
from anomaly_api.storage import open_store
from tests.conftest import CONTRACT_FIT


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


def test_a_bucket_holds_a_minute_and_refills_at_the_rate() -> None:
    quota = FitQuota(_app, per_minute=60)  # one a second
    assert all(quota.take("k", now=100.0) == 0.0 for _ in range(60))
    assert quota.take("k", now=100.0) == 1.0  # empty: one second to the next
    assert quota.take("other", now=100.0) == 0.0  # each key its own bucket
    assert quota.take("k", now=100.5) == 0.5
    assert quota.take("k", now=101.0) == 0.0
    assert quota.take("k", now=1000.0) == 0.0  # refilled, never beyond a minute's worth
    assert sum(quota.take("k", now=1000.0) == 0.0 for _ in range(100)) == 59


def test_fits_beyond_the_quota_get_429_per_key(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    store = open_store(database)
    keys = {name: new_key() for name in ("a", "b")}
    try:
        for name, key in keys.items():
            store.create_key(name, digest(key), ("write", "predict"))
    finally:
        store.close()
    settings = Settings(database_url=database, auth="required", quota_fits_per_minute=3)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        a = {"Authorization": f"Bearer {keys['a']}"}
        b = {"Authorization": f"Bearer {keys['b']}"}
        statuses = [
            client.post("/fit/s", json=CONTRACT_FIT, headers=a).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        refused = client.post("/fit/s", json=CONTRACT_FIT, headers=a)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "key 'a'" in refused.json()["detail"]
        assert "ANOMALY_QUOTA_FITS_PER_MINUTE" in refused.json()["detail"]
        assert client.post("/fit/t", json=CONTRACT_FIT, headers=b).status_code == 200
        point = {"timestamp": 1691000300, "value": 12}
        assert client.post("/predict/s", json=point, headers=a).status_code == 200
