from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomaly_api.cli import app
from anomaly_api.settings import Settings
from tests.servers import free_port

runner = CliRunner()


def test_sample_writes_the_original_format(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    result = runner.invoke(app, ["sample", str(path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["timestamp", "value"]
    assert len(rows) == 1001
    timestamps = [int(row[0]) for row in rows[1:]]
    assert all(b - a == 1 for a, b in itertools.pairwise(timestamps))
    assert all(0 <= float(row[1]) <= 200 for row in rows[1:])


def test_sample_point_count(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    assert runner.invoke(app, ["sample", str(path), "--points", "10"]).exit_code == 0
    assert len(path.read_text().splitlines()) == 11


def test_bench_against_nothing_fails_with_a_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["bench", "--url", url, "--requests", "5", "--no-progress"])
    assert result.exit_code == 2
    assert url in result.output


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    for command in ("serve", "sample", "bench"):
        assert command in result.output


def test_settings_come_from_anomaly_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALY_MODEL_CACHE_SIZE", "7")
    monkeypatch.setenv("ANOMALY_DATABASE_URL", "sqlite:////tmp/x.db")
    settings = Settings()
    assert settings.model_cache_size == 7
    assert settings.database_url == "sqlite:////tmp/x.db"
