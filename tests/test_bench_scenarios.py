"""``anomaly-api bench``'s scenarios, its JSON and markdown output, and the scaling
benchmark in a tiny configuration: all against real ``anomaly-api serve`` processes.
No timed assertions: only that everything ran, answered correctly and was reported."""

from __future__ import annotations

import json
import math
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from anomaly_api.bench import (
    SCENARIOS,
    BenchSuite,
    Load,
    PhaseStats,
    ScenarioResult,
    check_batch,
    format_markdown,
    format_table,
    run_scenarios,
    scenario_names,
    suite_json,
)
from anomaly_api.bench_scaling import ScalingConfig, format_scaling, run_scaling, write_scaling
from anomaly_api.bench_server import ServerProcess
from anomaly_api.cli import app

runner = CliRunner()

#: Small sizes for every scenario.
REQUESTS, CONCURRENCY, POINTS = 40, 4, 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the module's scenario tests."""
    workdir = tmp_path_factory.mktemp("bench-scenarios")
    with ServerProcess(workdir / "bench.db", log=workdir / "server.log") as process:
        yield process


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_runs_without_errors(server: ServerProcess, scenario: str) -> None:
    suite = run_scenarios(
        server.url,
        [scenario],
        runs=2,
        series_id=f"s_{scenario}",
        progress=False,
        requests=REQUESTS,
        concurrency=CONCURRENCY,
        points=POINTS,
    )

    (result,) = suite.results
    assert result.scenario == scenario
    assert len(result.runs) == 2
    assert suite.errors == 0, [phase.error_samples for run in result.runs for phase in run]
    for phase in result.median:
        assert phase.errors == 0
        assert phase.requests_per_s > 0
        assert 0 < phase.p50_ms <= phase.p95_ms <= phase.p99_ms <= phase.max_ms
    first = result.median[0]
    assert first.requests == REQUESTS
    if scenario in ("batch", "fit"):
        assert first.points_per_request == POINTS
        assert first.points_per_s == pytest.approx(first.requests_per_s * POINTS)
    else:
        assert first.points_per_s is None
    assert result.healthcheck["status"] == "ok"
    # The scenario's series are deleted afterwards: the user's store keeps nothing of it.
    with urllib.request.urlopen(f"{server.url}/series?limit=1000") as listing:
        left = [item["series_id"] for item in json.loads(listing.read())["series"]]
    assert not [name for name in left if name.startswith(f"s_{scenario}")], left


@pytest.mark.slow
def test_mixed_reports_predicts_and_the_fits_beside_them(server: ServerProcess) -> None:
    suite = run_scenarios(
        server.url,
        ["mixed"],
        series_id="mixed",
        progress=False,
        requests=REQUESTS,
        concurrency=CONCURRENCY,
        points=POINTS,
    )

    (run,) = suite.results[0].runs
    assert [phase.name for phase in run] == ["mixed: predict", "mixed: fit"]
    assert run[1].requests >= 1  # fits started alongside the predicts
    assert run[1].points_per_request == POINTS
    # The fit stream re-fitted the predicted series: its latest version moved on.
    assert suite.results[0].healthcheck["series_trained"] >= 2


@pytest.mark.slow
def test_json_output_parses(server: ServerProcess) -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "--url",
            server.url,
            "--scenario",
            "predict,fit",
            "--requests",
            "20",
            "--concurrency",
            "4",
            "--points",
            "50",
            "--runs",
            "2",
            "--json",
            "--no-progress",
        ],
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document["scenarios"]) == {"predict", "fit"}
    assert document["errors"] == 0
    assert document["machine"]["cores"] >= 1
    assert document["command"].startswith("anomaly-api")
    predict = document["scenarios"]["predict"]
    assert predict["runs"] == 2
    assert len(predict["per_run"]) == 2
    (median,) = predict["median"]
    for key in ("requests", "seconds", "requests_per_s", "p50_ms", "p95_ms", "p99_ms", "errors"):
        assert key in median
    assert median["points_per_s"] is None
    assert document["scenarios"]["fit"]["median"][0]["points_per_s"] > 0
    assert predict["healthcheck"]["status"] == "ok"


@pytest.mark.slow
def test_serve_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = runner.invoke(
        app,
        [
            "bench",
            "--serve",
            "--requests",
            "20",
            "--concurrency",
            "4",
            "--markdown",
            "--out",
            str(out),
            "--no-progress",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "| predict | 20 | 4 |" in result.stdout
    assert "Machine: " in result.stdout
    assert json.loads((out / "bench.json").read_text())["errors"] == 0
    assert "| scenario |" in (out / "bench.md").read_text()


def test_unknown_scenario_is_a_usage_error() -> None:
    result = runner.invoke(app, ["bench", "--scenario", "predict,nope", "--no-progress"])
    assert result.exit_code == 2
    assert "nope" in result.output


@pytest.mark.parametrize("selection", ["nope", "", " , "])
def test_scenario_names_refuses(selection: str) -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_names(selection)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"count": 3, "anomaly": [True, False, True], "score": [0] * 3, "expected": [0] * 3}, None),
        ({"count": 2, "anomaly": [True, False], "score": [0] * 2, "expected": [0] * 2}, "without"),
        ({"count": 3, "anomaly": [True, False, True], "score": [0] * 3}, "bad batch"),
        ("not an object", "bad batch"),
    ],
)
def test_check_batch(answer: object, problem: str | None) -> None:
    load = Load()
    outcome = check_batch(3)(orjson.dumps(answer), load)
    if problem is None:
        assert outcome is None
        assert load.anomalies == 2
    else:
        assert outcome is not None
        assert problem in outcome


def phase(name: str, rate: float, **changes: object) -> PhaseStats:
    fields: dict[str, object] = {
        "name": name,
        "requests": 100,
        "concurrency": 10,
        "points_per_request": 1,
        "seconds": 100 / rate,
        "requests_per_s": rate,
        "points_per_s": None,
        "p50_ms": 2.0,
        "p95_ms": 3.0,
        "p99_ms": 4.5,
        "mean_ms": 2.2,
        "max_ms": 9.0,
        "errors": 0,
    }
    fields.update(changes)
    return PhaseStats(**fields)  # type: ignore[arg-type]


def make_suite() -> BenchSuite:
    predict_runs = ((phase("predict", 1000.0),), (phase("predict", 3000.0),))
    batch = phase("batch", 50.0, points_per_request=10_000, points_per_s=500_000.0)
    failing = phase("fit", 20.0, errors=2, error_samples=("HTTP 503: busy",), p50_ms=math.nan)
    return BenchSuite(
        url="http://127.0.0.1:8000",
        command="anomaly-api bench --scenario all",
        date="2026-11-24 12:00 UTC",
        machine={"cores": 2, "cpu": "AMD EPYC", "python": "3.11.7", "os": "Linux 6"},
        results=(
            ScenarioResult("predict", predict_runs, {"series_trained": 1}),
            ScenarioResult("batch", ((batch,),), {}),
            ScenarioResult("fit", ((failing,),), {"series_trained": 11}),
        ),
    )


def test_medians_table_markdown_and_json_of_a_suite() -> None:
    suite = make_suite()

    assert suite.results[0].median[0].requests_per_s == 2000.0
    assert suite.errors == 2

    table = format_table(suite)
    assert (
        table.splitlines()[0] == "against http://127.0.0.1:8000; medians of 2 run(s) per scenario"
    )
    assert "batch (10,000 points)" in table
    assert "500,000" in table
    assert "  fit: HTTP 503: busy" in table
    assert json.loads(table.split("healthcheck:\n", 1)[1]) == {"series_trained": 11}

    markdown = format_markdown(suite)
    assert "Machine: 2 cores, AMD EPYC, Python 3.11.7, Linux 6" in markdown
    assert "Command: `anomaly-api bench --scenario all`" in markdown
    assert "Date: 2026-11-24 12:00 UTC" in markdown
    assert "| predict | 100 | 10 | 2,000 | - | 2.00 | 3.00 | 4.50 | 0 | ~593 req/s |" in markdown
    assert "| fit | 100 | 10 | 20.0 | - | n/a |" in markdown

    document = json.loads(json.dumps(suite_json(suite)))
    assert document["scenarios"]["fit"]["median"][0]["p50_ms"] is None  # NaN becomes null
    assert document["scenarios"]["predict"]["per_run"][1][0]["requests_per_s"] == 3000.0


@pytest.mark.slow
def test_scaling_in_a_tiny_configuration_writes_a_png(tmp_path: Path) -> None:
    config = ScalingConfig(
        max_series=120,
        working_sets=(1, 40, 120),
        small_cache=30,
        requests=60,
        concurrency=4,
        training_points=10,
        fit_points=(100, 1000),
        fit_repeats=2,
        memory_models=20,
        memory_training_points=200,
    )
    result = run_scaling(config, progress=False, command="test")

    assert result.versions_stored == 120 + 12 * 2  # every tenth series has three versions
    assert [(p.cache_size, p.working_set) for p in result.predicts] == [
        (121, 1),
        (121, 40),
        (121, 120),
        (30, 1),
        (30, 40),
        (30, 120),
    ]
    assert all(point.stats.errors == 0 for point in result.predicts), [
        point.stats.error_samples for point in result.predicts
    ]
    assert result.predicts[2].models_cached == 120
    assert result.predicts[-1].models_cached == 30
    assert [fit.points for fit in result.fits] == [100, 1000]
    assert all(len(fit.runs_ms) == 2 and fit.median_ms > 0 for fit in result.fits)
    assert [memory.detector for memory in result.memory] == ["zscore", "adaptive"]
    assert all(memory.traced_bytes_per_model > 0 for memory in result.memory)

    paths = write_scaling(result, tmp_path / "out")
    png, text = paths[2].read_bytes(), paths[1].read_text()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "| 30 (small) | 120 |" in text
    assert text == format_scaling(result) + "\n"
    document = json.loads(paths[0].read_text())
    assert len(document["predict"]) == 6
    assert document["series_stored"] == 120


def test_scaling_config_is_cut_to_the_sizes_asked_for() -> None:
    config = ScalingConfig.sized(max_series=50, max_fit_points=1000, requests=7, concurrency=3)
    assert config.working_sets == (1, 50)
    assert config.fit_points == (1000,)
    assert (config.requests, config.concurrency) == (7, 3)
    assert ScalingConfig.sized().working_sets == (1, 100, 1_000, 10_000, 100_000)


def test_a_stopped_server_leaves_no_process_behind(tmp_path: Path) -> None:
    """Stopping waits for every process of the server's group, workers included, so
    the caller can remove the directory they wrote into (a worker that outlived its
    parent once made the scaling benchmark's cleanup fail with "Directory not empty")."""
    with ServerProcess(tmp_path / "two.db", log=tmp_path / "server.log", workers=2) as process:
        group = process.process.pid if process.process else 0
        assert group
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"process group {group} still has members after stop()")
