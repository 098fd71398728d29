"""Shared fixtures: every test gets its own SQLite file and app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.settings import Settings

pytest_plugins = ["tests.postgres"]  # postgresql_database, postgresql_url

CONTRACT_FIT = {
    "timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240],
    "values": [10, 11, 9, 12, 15],
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'models.db'}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client
