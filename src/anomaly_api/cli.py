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


def main() -> None:
    """Entry point of the ``anomaly-api`` script."""
    app()
