from __future__ import annotations

import csv
import io
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


def test_keys_create_list_and_revoke(tmp_path: Path) -> None:
    from anomaly_api.auth import digest
    from anomaly_api.quotas import NO_LIMITS
    from anomaly_api.storage import open_store

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    created = runner.invoke(
        app, ["keys", "create", "--name", "ci", "--scopes", "predict,read", "--database-url", url]
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("adk_") and len(key) > 40
    store = open_store(url)
    try:
        assert store.active_keys() == [(digest(key), "ci", ("read", "predict"), NO_LIMITS)]
    finally:
        store.close()
    assert key not in runner.invoke(app, ["keys", "list", "--database-url", url]).output
    again = runner.invoke(app, ["keys", "create", "--name", "ci", "--database-url", url])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(
        app, ["keys", "create", "--name", "x", "--scopes", "root", "--database-url", url]
    )
    assert bad.exit_code == 2 and "unknown scope" in bad.output
    assert runner.invoke(app, ["keys", "revoke", "ci", "--database-url", url]).exit_code == 0
    listed = runner.invoke(app, ["keys", "list", "--database-url", url]).output
    assert "ci" in listed and "Z" in listed.splitlines()[1].split()[3]
    assert runner.invoke(app, ["keys", "revoke", "ci", "--database-url", url]).exit_code == 2


def test_keys_create_with_limits_and_list_their_usage(tmp_path: Path) -> None:
    from anomaly_api.quotas import Limits
    from anomaly_api.storage import open_store

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    created = runner.invoke(
        app,
        ["keys", "create", "--name", "tenant", "--scopes", "write", "--max-series", "10",
         "--retention-days", "7.5", "--database-url", url],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    store = open_store(url)
    try:
        assert store.list_keys()[0].limits == Limits(10, None, 7.5)
    finally:
        store.close()
    row = runner.invoke(app, ["keys", "list", "--database-url", url]).output.splitlines()[1]
    assert row.split()[-5:] == ["0", "0", "10", "-", "7.5"]  # series, points, limits
    negative = runner.invoke(
        app, ["keys", "create", "--name", "x", "--max-points", "-1", "--database-url", url]
    )
    assert negative.exit_code == 2 and "--max-points" in negative.output


def test_serve_refuses_a_network_address_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # serve writes both into the environment for its workers: set them here first so
    # that monkeypatch takes them out again afterwards.
    monkeypatch.setenv("ANOMALY_HOST", "127.0.0.1")
    monkeypatch.setenv("ANOMALY_AUTH", "required")
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--auth", "off"])
    assert result.exit_code == 2 and "refusing" in result.output


def test_client_tools_send_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from anomaly_api.auth import client_headers

    monkeypatch.delenv("ANOMALY_API_KEY", raising=False)
    assert client_headers() == {}
    monkeypatch.setenv("ANOMALY_API_KEY", " adk_secret \n")
    assert client_headers() == {"Authorization": "Bearer adk_secret"}


def test_version_is_printed() -> None:
    from anomaly_api import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"anomaly-api {__version__}"


def test_user_mistakes_are_one_line_errors_with_exit_code_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["evaluate", "--data", "nope", "--labels", "nope"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "Traceback" not in missing.output
    (tmp_path / "data").mkdir()
    (tmp_path / "labels.json").write_text("not json")
    broken = runner.invoke(
        app,
        ["evaluate", "--data", str(tmp_path / "data"), "--labels", str(tmp_path / "labels.json")],
    )
    assert broken.exit_code == 2 and broken.output.startswith("evaluate: "), broken.output
    help_text = runner.invoke(app, ["evaluate", "--help"]).output
    assert "<bool>" not in help_text and "4032" in help_text


def test_fit_and_score_csv_files_through_a_real_server(tmp_path: Path) -> None:
    import json as json_module
    import urllib.request

    from anomaly_api.bench_server import ServerProcess

    training = tmp_path / "train.csv"
    training.write_text(
        "timestamp,value\n"
        + "".join(f"2024-01-01 00:{minute:02d}:00,{10 + minute % 3}\n" for minute in range(30))
    )
    stream = tmp_path / "stream.csv"
    stream.write_text(
        "timestamp,value,note\n"
        + "".join(
            f"2024-01-01 01:{minute:02d}:00,{40 if minute == 5 else 10 + minute % 3},x\n"
            for minute in range(10)
        )
    )
    with ServerProcess(tmp_path / "m.db", log=tmp_path / "server.log") as server:
        fitted = runner.invoke(app, ["fit", "cpu", str(training), "--url", server.url])
        assert fitted.exit_code == 0, fitted.output
        assert json_module.loads(fitted.output)["points_used"] == 30
        out = tmp_path / "answers.csv"
        scored = runner.invoke(
            app,
            ["score", "cpu", str(stream), "--url", server.url, "--out", str(out), "--no-progress"],
        )
        assert scored.exit_code == 0, scored.output
        assert "scored 10 points of 'cpu': 1 anomalous" in scored.output
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert [row["anomaly"] for row in rows].count("True") == 1 and rows[5]["anomaly"] == "True"
        with urllib.request.urlopen(f"{server.url}/series/cpu/points") as answer:
            kept = json_module.loads(answer.read())["points"]
        assert [float(row["score"]) for row in rows] == [point["score"] for point in kept]
        unknown = runner.invoke(
            app, ["score", "nobody", str(stream), "--url", server.url, "--no-progress"]
        )
        assert unknown.exit_code == 1 and "404" in unknown.output
    missing = runner.invoke(app, ["fit", "cpu", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "fit: " in missing.output
    headless = tmp_path / "headless.csv"
    headless.write_text("1,2\n3,4\n")
    bad = runner.invoke(app, ["fit", "cpu", str(headless)])
    assert bad.exit_code == 2 and "'timestamp' and a 'value' column" in bad.output
