"""The audit log: one JSON line per fit, delete and key change (refused ones too),
naming the key; none for reads and predicts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from anomaly_api.api.app import create_app
from anomaly_api.api.asgi.audit import action_of
from anomaly_api.auth import digest, new_key
from anomaly_api.cli import app as cli
from anomaly_api.settings import Settings
from anomaly_api.storage import open_store
from tests.conftest import CONTRACT_FIT


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("POST", "/fit/s", "fit"),
        ("DELETE", "/series/s", "delete"),
        ("DELETE", "/series/s/versions/2", "delete"),
        ("POST", "/keys", "key create"),
        ("DELETE", "/keys/k", "key revoke"),
        ("GET", "/keys", None),
        ("POST", "/predict/s", None),
        ("POST", "/detect", None),
        ("GET", "/series/s", None),
    ],
)
def test_what_is_audited(method: str, path: str, action: str | None) -> None:
    assert action_of(method, path) == action


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, Path, dict[str, str]]]:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    audit = tmp_path / "audit.log"
    keys = {}
    store = open_store(database)
    try:
        for name, scopes in (("writer", "write,read"), ("admin", "admin"), ("reader", "read")):
            keys[name] = new_key()
            store.create_key(name, digest(keys[name]), tuple(scopes.split(",")))
    finally:
        store.close()
    settings = Settings(database_url=database, auth="required", audit_log=str(audit))
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client, audit, keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_fits_deletes_and_key_changes_are_logged_with_who(
    keyed: tuple[TestClient, Path, dict[str, str]],
) -> None:
    client, audit, keys = keyed
    assert (
        client.post("/fit/s1", json=CONTRACT_FIT, headers=_auth(keys["writer"])).status_code == 200
    )
    assert (
        client.post("/fit/s1", json=CONTRACT_FIT, headers=_auth(keys["reader"])).status_code == 403
    )
    assert client.post("/fit/s1", json=CONTRACT_FIT).status_code == 401
    assert client.get("/series/s1", headers=_auth(keys["reader"])).status_code == 200
    assert client.delete("/series/s1", headers=_auth(keys["writer"])).status_code == 200
    created = client.post(
        "/keys", json={"name": "new", "scopes": ["read"]}, headers=_auth(keys["admin"])
    )
    assert created.status_code == 201
    assert client.delete("/keys/new", headers=_auth(keys["admin"])).status_code == 200
    lines = _lines(audit)
    seen = [(line["who"], line["action"], line["path"], line["status"]) for line in lines]
    assert seen == [
        ("writer", "fit", "/fit/s1", 200),
        (None, "fit", "/fit/s1", 403),
        (None, "fit", "/fit/s1", 401),
        ("writer", "delete", "/series/s1", 200),
        ("admin", "key create", "/keys", 201),
        ("admin", "key revoke", "/keys/new", 200),
    ]
    assert all(line["time"] and line["client"] and line["method"] for line in lines)


def test_the_cli_key_commands_are_logged(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    audit = tmp_path / "audit.log"
    env = {"ANOMALY_DATABASE_URL": database, "ANOMALY_AUDIT_LOG": str(audit)}
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--name", "k1", "--scopes", "read"], env=env)
    assert created.exit_code == 0, created.output
    revoked = runner.invoke(cli, ["keys", "revoke", "k1"], env=env)
    assert revoked.exit_code == 0, revoked.output
    actions = [(line["action"], line["name"]) for line in _lines(audit)]
    assert actions == [("key create", "k1"), ("key revoke", "k1")]
    assert all(str(line["who"]).startswith("cli:") for line in _lines(audit))
