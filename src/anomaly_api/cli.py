"""The ``anomaly-api`` command: argument parsing only; the work lives elsewhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from anomaly_api.settings import Settings

app = typer.Typer(
    help="Anomaly detection service for time series.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [ANOMALY_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [ANOMALY_PORT].")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes [ANOMALY_WORKERS].")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Model store [ANOMALY_DATABASE_URL].")
    ] = None,
) -> None:
    """Run the HTTP service (uvicorn with uvloop and httptools)."""
    import uvicorn

    if database_url is not None:
        # Workers build their own Settings from the environment, so pass it on there.
        os.environ["ANOMALY_DATABASE_URL"] = database_url
    settings = Settings()
    uvicorn.run(
        "anomaly_api.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


@app.command()
def sample(
    path: Annotated[Path, typer.Argument(help="Where to write the CSV.")] = Path("sample.csv"),
    points: Annotated[int, typer.Option(min=1, help="How many points.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Write sample data as the original did: timestamp,value, 1 s apart, uniform 0-200."""
    from anomaly_api.sample import write_sample

    write_sample(path, points, seed)
    typer.echo(f"wrote {points} points to {path}")


@app.command()
def bench(
    url: Annotated[str, typer.Option(help="Base URL of a running service.")] = (
        "http://127.0.0.1:8000"
    ),
    requests: Annotated[int, typer.Option(min=1, help="Predict requests to send.")] = 5000,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 100,
    series_id: Annotated[str, typer.Option(help="Series the benchmark fits.")] = "bench_sample",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fit the sample, then send predicts concurrently; print rate, latency and health."""
    from anomaly_api.bench import BenchError, format_report, run_bench

    try:
        report = run_bench(
            url, requests=requests, concurrency=concurrency, series_id=series_id, progress=progress
        )
    except BenchError as exc:
        typer.echo(f"bench: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(format_report(report))
    if report.errors:
        raise typer.Exit(code=1)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="NAB-layout data: <category>/<file>.csv.")],
    labels: Annotated[Path, typer.Option(help="NAB labels (combined_windows.json).")],
    detector: Annotated[
        str, typer.Option(help="A detector name, a comma-separated list, or 'all'.")
    ] = "all",
    refit_every: Annotated[
        int, typer.Option(min=1, help="Re-fit after this many scored rows.")
    ] = 10,
    window: Annotated[int, typer.Option(min=5, help="Rows each re-fit trains on.")] = 4032,
    params: Annotated[
        str | None, typer.Option(help="Detector parameters as JSON, e.g. '{\"window\": 8}'.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write NAB results CSVs under this directory.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per file.")] = True,
) -> None:
    """Replay labelled series causally through the registry and print NAB scores."""
    import json

    from anomaly_api.evaluate import ReplayConfig, detector_names, format_results
    from anomaly_api.evaluate import evaluate as run_evaluation

    try:
        names = detector_names(detector)
        parsed = json.loads(params) if params else None
    except (ValueError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(str(exc)) from None
    results = run_evaluation(
        data,
        labels,
        names,
        ReplayConfig(refit_every=refit_every, window=window),
        out_dir=out,
        params=parsed,
        progress=progress,
    )
    typer.echo(format_results(results))


def main() -> None:
    """Entry point of the ``anomaly-api`` script."""
    app()
