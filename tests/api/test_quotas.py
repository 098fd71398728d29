"""Quotas per key. Fits per minute (``ANOMALY_QUOTA_FITS_PER_MINUTE``): a minute's worth
at once, then the refill rate; 429 with Retry-After beyond; other keys and other routes
unaffected. Series and stored points (``ANOMALY_QUOTA_SERIES``/``_POINTS`` or the key's
own limits): 429 before anything is written. Retention: old versions deleted, each
series' latest kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.api.asgi.quotas import FitQuota
from anomaly_api.auth import digest, new_key
from anomaly_api.quotas import NO_LIMITS, Limits
from anomaly_api.registry.retention import RetentionSweep
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


def _keyed_store(database: str, limits: dict[str, Limits]) -> dict[str, dict[str, str]]:
    """Keys named after ``limits``' keys, each with those limits: their auth headers."""
    store = open_store(database)
    headers = {}
    try:
        for name, own in limits.items():
            key = new_key()
            store.create_key(name, digest(key), ("read", "write", "predict", "admin"), own)
            headers[name] = {"Authorization": f"Bearer {key}"}
    finally:
        store.close()
    return headers


def _fit(points: int) -> dict[str, object]:
    return {
        "timestamps": [1_691_000_000 + 60 * index for index in range(points)],
        "values": [float(index % 7) for index in range(points)],
    }


def test_series_and_points_quotas_per_key_answer_429(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    keys = _keyed_store(
        database, {"small": Limits(max_series=2), "tiny": Limits(max_points=30), "free": Limits(0)}
    )
    settings = Settings(database_url=database, auth="required", quota_series=1)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        small, tiny, free = keys["small"], keys["tiny"], keys["free"]
        # The key's own --max-series (2) over the server's default (1).
        assert client.post("/fit/a", json=_fit(10), headers=small).status_code == 200
        assert client.post("/fit/b", json=_fit(10), headers=small).status_code == 200
        refused = client.post("/fit/c", json=_fit(10), headers=small)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "key 'small' holds 2 series" in refused.json()["detail"]
        assert client.get("/series/c", headers=small).status_code == 404  # nothing written
        assert client.post("/fit/a", json=_fit(10), headers=small).status_code == 200
        # A key without its own series limit gets the default (1) and its own points one.
        assert client.post("/fit/t", json=_fit(20), headers=tiny).status_code == 200
        over = client.post("/fit/t", json=_fit(11), headers=tiny)
        assert over.status_code == 429 and "training points" in over.json()["detail"]
        assert client.post("/fit/t", json=_fit(10), headers=tiny).status_code == 200
        assert client.post("/fit/u", json=_fit(5), headers=tiny).status_code == 429
        # 0: no limit, whatever the default.
        for name in "xyz":
            assert client.post(f"/fit/{name}", json=_fit(10), headers=free).status_code == 200
        versions = client.get("/series/a", headers=small).json()["versions"]
        assert [version["created_by"] for version in versions] == ["small", "small"]


def test_anonymous_fits_share_the_default_quota_with_keys_off(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", quota_series=2)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.post("/fit/a", json=CONTRACT_FIT).status_code == 200
        assert client.post("/fit/b", json=CONTRACT_FIT).status_code == 200
        refused = client.post("/fit/c", json=CONTRACT_FIT)
        assert refused.status_code == 429 and "anonymous fits" in refused.json()["detail"]
        assert client.delete("/series/a").status_code == 200
        assert client.post("/fit/c", json=CONTRACT_FIT).status_code == 200
        assert client.get("/series/c").json()["versions"][0]["created_by"] is None


def test_keys_created_over_http_carry_their_limits(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    admin = _keyed_store(database, {"root": NO_LIMITS})["root"]
    settings = Settings(database_url=database, auth="required")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        body = {"name": "t", "scopes": ["write"], "max_points": 20, "retention_days": 1.5}
        created = client.post("/keys", json=body, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["max_points"] == 20 and created.json()["max_series"] is None
        new = {"Authorization": f"Bearer {created.json()['key']}"}
        bad = client.post("/keys", json={**body, "name": "u", "max_series": -1}, headers=admin)
        assert bad.status_code == 422 and "max_series" in bad.text
        listed = {key["name"]: key for key in client.get("/keys", headers=admin).json()}
        assert listed["t"]["retention_days"] == 1.5
        # The keyring reloads within half a second; then the key's quota holds.
        deadline = time.monotonic() + 5
        while client.post("/fit/s", json=_fit(20), headers=new).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.post("/fit/s", json=_fit(5), headers=new).status_code == 429


def test_retention_deletes_old_versions_but_each_series_latest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    keys = _keyed_store(database, {"short": Limits(retention_days=1), "kept": NO_LIMITS})
    settings = Settings(database_url=database, auth="required")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        for name, headers in keys.items():
            for _ in range(3):
                assert (
                    client.post(f"/fit/{name}", json=_fit(10), headers=headers).status_code == 200
                )
        store = open_store(database)
        try:
            sweep = RetentionSweep(store, settings.default_limits)
            assert sweep.owners() == [("short", 86_400.0)]
            assert sweep.sweep(now=time.time() + 3600) == 0  # not a day old yet
            with caplog.at_level("INFO", logger="anomaly_api.audit"):
                assert sweep.sweep(now=time.time() + 86_401) == 2
        finally:
            store.close()
        assert '"who": "retention"' in caplog.text and '"owner": "short"' in caplog.text
        short = client.get("/series/short", headers=keys["short"]).json()["versions"]
        assert [version["version"] for version in short] == ["3"]
        kept = client.get("/series/kept", headers=keys["kept"]).json()["versions"]
        assert len(kept) == 3
        # The server's caches forgot the deleted versions.
        gone = client.post(
            "/predict/short?version=1", json={"timestamp": 1_700_000_000, "value": 1.0},
            headers=keys["short"],
        )  # fmt: skip
        assert gone.status_code == 404
