"""The ``anomaly-api`` command: argument parsing only; the work lives elsewhere."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anomaly_api.settings import Settings, is_loopback

if TYPE_CHECKING:
    from anomaly_api.storage import ModelStore

app = typer.Typer(
    help="Anomaly detection service for time series.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: flags and defaults without type tags or cut-offs
)


def _print_version(asked: bool) -> None:
    if asked:
        from anomaly_api import __version__

        typer.echo(f"anomaly-api {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Anomaly detection service for time series."""


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
    auth: Annotated[
        str | None,
        typer.Option(
            help="API keys: required or off [ANOMALY_AUTH; default: off on a loopback "
            "address, required otherwise]."
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Allow --auth off on an address other machines can reach (anyone who "
            "reaches it may read, write and delete every series).",
        ),
    ] = False,
) -> None:
    """Run the HTTP service (uvicorn with uvloop and httptools, with deadlines for slow
    clients and a connection limit: see anomaly_api/api/protocol.py).

    The workers share a run directory, so that /metrics and /healthcheck describe all of
    them: a fresh temporary one, removed on exit, unless PROMETHEUS_MULTIPROC_DIR names
    one (which must then be emptied between runs, or old counters are added in).
    """
    import shutil

    import uvicorn

    from anomaly_api.api.protocol import GuardedHttpToolsProtocol, connection_limit

    if database_url is not None:
        # Workers build their own Settings from the environment, so pass it on there.
        os.environ["ANOMALY_DATABASE_URL"] = database_url
    if workers is not None:
        os.environ["ANOMALY_WORKERS"] = str(workers)
    if host is not None:
        os.environ["ANOMALY_HOST"] = host  # the workers decide on API keys from it
    if auth is not None:
        if auth not in ("required", "off"):
            raise typer.BadParameter("must be required or off", param_hint="--auth")
        os.environ["ANOMALY_AUTH"] = auth
    settings = Settings()
    if not settings.auth_required and not is_loopback(settings.host) and not insecure_no_auth:
        typer.echo(
            f"serve: refusing to serve {settings.host} with API keys off: anyone who reaches "
            "it could read, write and delete every series. Leave ANOMALY_AUTH unset (keys "
            "are then required; create one with `anomaly-api keys create`), bind 127.0.0.1, "
            "or pass --insecure-no-auth.",
            err=True,
        )
        raise typer.Exit(code=2)
    if settings.instance_id is None:
        # The name of this server's hold on series streams: stable across restarts, so a
        # server restarted after a crash resumes its streams at once instead of waiting
        # for its predecessor's lease to run out (see registry/streams.py).
        os.environ["ANOMALY_INSTANCE_ID"] = f"{socket.gethostname()}:{port or settings.port}"
    # prometheus_client reads the variable when first imported, which only the app (in
    # this process or in the workers uvicorn spawns) does, after this line.
    run_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    temporary = None
    if run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    else:
        from anomaly_api.rundir import make_run_dir, remove_stale_run_dirs

        for stale in remove_stale_run_dirs():
            typer.echo(f"serve: removed {stale}, left by a server that was killed", err=True)
        temporary = str(make_run_dir())
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = temporary
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    # handler it found: make that handler an exit, so the clean-up below still runs
    # (the default would kill the process and leave the run directory behind).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            "anomaly_api.api.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
            loop="uvloop",
            http=GuardedHttpToolsProtocol,
            limit_concurrency=connection_limit(settings.max_connections),
            log_level=settings.log_level,
            access_log=settings.access_log,
            timeout_graceful_shutdown=10,
        )
    finally:
        if temporary is not None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            shutil.rmtree(temporary, ignore_errors=True)


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(128 + number)


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
    scenario: Annotated[
        str,
        typer.Option(
            help="predict, batch, fit, mixed, a comma-separated list, 'all', or 'scaling' "
            "(how cost grows; starts its own servers)."
        ),
    ] = "predict",
    requests: Annotated[
        int | None,
        typer.Option(min=1, help="Requests per scenario run [predict 5000, batch/fit 200]."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Requests in flight at once [predict 100, batch/fit 8]."),
    ] = None,
    points: Annotated[
        int | None,
        typer.Option(min=5, help="Points per batch [10000] or per fit [1000]."),
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="Runs per scenario; medians reported.")] = 1,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Start a throwaway server (1 worker, fresh SQLite file) instead of --url.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of text.")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Also print the README's markdown table.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write JSON, markdown (and scaling's PNG) here.")
    ] = None,
    max_series: Annotated[
        int, typer.Option(min=1, help="scaling: stored series (largest working set).")
    ] = 100_000,
    max_fit_points: Annotated[
        int, typer.Option(min=5, help="scaling: largest fit measured.")
    ] = 1_000_000,
    series_id: Annotated[str, typer.Option(help="Series the benchmark fits.")] = "bench_sample",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Load-test the service: fit the sample, then predict (default), batch-predict, fit,
    or both at once; print rate, latency percentiles, errors and the healthcheck.

    With the defaults this is the original's benchmark and prints its detailed report;
    other scenarios, --runs or --json print a table or a JSON document. '--scenario
    scaling' measures how predict latency, fit time and memory grow with the number of
    series, the cache size and the points (see the README).
    """
    import json
    import shlex
    import sys

    from anomaly_api.bench import (
        BenchError,
        format_markdown,
        format_report,
        format_table,
        run_bench,
        run_scenarios,
        scenario_names,
        suite_json,
        write_suite,
    )
    from anomaly_api.bench_server import ServerError, target_url

    command = shlex.join(["anomaly-api", *sys.argv[1:]])
    if scenario.strip() == "scaling":
        from anomaly_api.bench_scaling import (
            ScalingConfig,
            format_scaling,
            run_scaling,
            scaling_json,
            write_scaling,
        )

        config = ScalingConfig.sized(
            max_series=max_series,
            max_fit_points=max_fit_points,
            requests=requests,
            concurrency=concurrency,
        )
        try:
            result = run_scaling(config, progress=progress, command=command)
        except ServerError as exc:
            typer.echo(f"bench: {exc}", err=True)
            raise typer.Exit(code=2) from None
        if out is not None:
            write_scaling(result, out)
        typer.echo(
            json.dumps(scaling_json(result), indent=2) if json_output else format_scaling(result)
        )
        return
    try:
        names = scenario_names(scenario)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    if names == ["predict"] and runs == 1 and not (json_output or markdown or out):
        # The original's benchmark, reported in detail as it printed it.
        try:
            with target_url(url, serve) as target:
                report = run_bench(
                    target,
                    requests=requests or 5000,
                    concurrency=concurrency or 100,
                    series_id=series_id,
                    progress=progress,
                )
        except (BenchError, ServerError) as exc:
            typer.echo(f"bench: {exc}", err=True)
            raise typer.Exit(code=2) from None
        typer.echo(format_report(report))
        errors = report.errors
    else:
        try:
            with target_url(url, serve) as target:
                suite = run_scenarios(
                    target,
                    names,
                    runs=runs,
                    requests=requests,
                    concurrency=concurrency,
                    points=points,
                    series_id=series_id,
                    progress=progress,
                    command=command,
                )
        except (BenchError, ServerError) as exc:
            typer.echo(f"bench: {exc}", err=True)
            raise typer.Exit(code=2) from None
        if out is not None:
            write_suite(suite, out)
        if json_output:
            typer.echo(json.dumps(suite_json(suite), indent=2))
        else:
            typer.echo(format_table(suite))
            if markdown:
                typer.echo("\n" + format_markdown(suite))
        errors = suite.errors
    if errors:
        raise typer.Exit(code=1)


@app.command()
def evaluate(
    data: Annotated[
        Path,
        typer.Option(help="NAB-layout data: <category>/<file>.csv.", exists=True, file_okay=False),
    ],
    labels: Annotated[
        Path,
        typer.Option(help="NAB labels (combined_windows.json).", exists=True, dir_okay=False),
    ],
    detector: Annotated[
        str, typer.Option(help="A detector name, a comma-separated list, or 'all'.")
    ] = "all",
    mode: Annotated[
        str,
        typer.Option(
            help="live: one fit, then one predict per row, as clients do (the service "
            "retrains by itself). replay: re-fit every --refit-every rows on the trailing "
            "--window rows, scoring batches between (the earlier evaluation)."
        ),
    ] = "live",
    retrain: Annotated[
        str | None,
        typer.Option(
            help='live: the fit\'s retrain policy as JSON, e.g. \'{"every": "1d", '
            "\"window\": \"14d\"}', or 'false' [the detector's default]."
        ),
    ] = None,
    refit_every: Annotated[
        int, typer.Option(min=1, help="replay: re-fit after this many scored rows.")
    ] = 10,
    window: Annotated[int, typer.Option(min=5, help="replay: rows each re-fit trains on.")] = 4032,
    params: Annotated[
        str | None, typer.Option(help="Detector parameters as JSON, e.g. '{\"window\": 8}'.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write NAB results CSVs under this directory.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per file.")] = True,
) -> None:
    """Replay labelled series through the registry as clients use the service (one fit,
    then a predict per row) and print NAB scores."""
    import json

    from anomaly_api.evaluate import ReplayConfig, detector_names, format_results
    from anomaly_api.evaluate import evaluate as run_evaluation

    if mode not in ("live", "replay"):
        raise typer.BadParameter("must be live or replay", param_hint="--mode")
    try:
        names = detector_names(detector)
        parsed = json.loads(params) if params else None
        policy = json.loads(retrain) if retrain is not None else None
    except (ValueError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        results = run_evaluation(
            data,
            labels,
            names,
            ReplayConfig(refit_every=refit_every, window=window, mode=mode, retrain=policy),
            out_dir=out,
            params=parsed,
            progress=progress,
        )
    except (ValueError, OSError) as exc:  # the corpus or labels are not what they should be
        typer.echo(f"evaluate: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(format_results(results))


@app.command()
def migrate(
    source: Annotated[
        str, typer.Option("--from", help="The store to copy: sqlite:///PATH or postgresql://...")
    ],
    target: Annotated[
        str,
        typer.Option("--to", help="The store to copy into: postgresql://USER@HOST:PORT/DB or ..."),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Versions per import transaction.")] = 100,
    progress: Annotated[bool, typer.Option(help="Show progress bars on a terminal.")] = True,
) -> None:
    """Copy every model version and version counter of one store into another, then
    verify the copy; an interrupted copy resumes when run again.

    Exits 1 when the target holds different models under the same version numbers
    (nothing is written then) or when verification finds a difference.
    """
    import logging
    import sys

    from anomaly_api.errors import StoreUnavailable
    from anomaly_api.migrate import (
        InvalidUrl,
        describe_url,
        format_report,
        migrate_urls,
        progress_bars,
    )

    # The pool logs every failed connection attempt; the one error below says it all.
    logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
    try:
        with progress_bars(progress and sys.stderr.isatty()) as bars:
            report = migrate_urls(source, target, batch_size=batch_size, progress=bars)
    except InvalidUrl as exc:
        option = "--from" if exc.role == "source" else "--to"
        raise typer.BadParameter(exc.message, param_hint=option) from None
    except StoreUnavailable as exc:
        typer.echo(f"migrate: {exc.message}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{describe_url(source)} -> {describe_url(target)}")
    typer.echo(format_report(report))
    if not report.ok:
        what = "conflicts" if report.conflict_count else "verification failed"
        typer.echo(f"migrate: {what}; the target is not a copy of the source", err=True)
        raise typer.Exit(code=1)


UrlOption = Annotated[
    str, typer.Option(help="Base URL of the service (the key in ANOMALY_API_KEY is sent).")
]
CsvFileArgument = Annotated[
    Path, typer.Argument(help="CSV with 'timestamp' and 'value' columns.", dir_okay=False)
]


@contextlib.contextmanager
def _client_errors(command: str) -> Iterator[None]:
    """A client command's failure as one line on stderr: exit code 2 for a user's mistake
    (a bad file or URL), 1 when the service refused or did not answer."""
    from anomaly_api.client import ClientError

    try:
        yield
    except ClientError as exc:
        typer.echo(f"{command}: {exc}", err=True)
        raise typer.Exit(code=2 if exc.user_mistake else 1) from None


@app.command("fit")
def fit_command(
    series_id: Annotated[str, typer.Argument(help="The series to fit.")],
    file: CsvFileArgument,
    url: UrlOption = "http://127.0.0.1:8000",
    detector: Annotated[
        str | None, typer.Option(help="Detector name [the service's default].")
    ] = None,
) -> None:
    """Fit a new version of SERIES_ID on a CSV file's points; print the answer."""
    import json

    from anomaly_api.client import fit_file

    with _client_errors("fit"):
        answer = fit_file(url, series_id, file, detector=detector)
    typer.echo(json.dumps(answer))


@app.command("score")
def score_command(
    series_id: Annotated[str, typer.Argument(help="The series to score the points against.")],
    file: CsvFileArgument,
    url: UrlOption = "http://127.0.0.1:8000",
    out: Annotated[
        Path | None, typer.Option(help="Write the answers (CSV) here [standard output].")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Stream a CSV file through the live path, one POST /predict per row in order (each
    point joins the series' history as a live point would), and write every answer as
    CSV: timestamp, value, anomaly, score, expected, band, direction, version, incident."""
    import contextlib
    import sys

    from tqdm import tqdm

    from anomaly_api.client import read_points, score_file

    try:
        with _client_errors("score"), contextlib.ExitStack() as stack:
            total = len(read_points(file))
            target = sys.stdout if out is None else stack.enter_context(out.open("w", newline=""))
            bar = stack.enter_context(
                tqdm(total=total, unit="pt", disable=not progress, file=sys.stderr)
            )
            points, anomalies = score_file(url, series_id, file, target, bar.update)
    except OSError as exc:
        typer.echo(f"score: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"scored {points} points of {series_id!r}: {anomalies} anomalous", err=True)


keys_app = typer.Typer(
    help="API keys: create, list and revoke them in the model store (ANOMALY_DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

DatabaseOption = Annotated[
    str | None, typer.Option(help="Model store [ANOMALY_DATABASE_URL].", show_default=False)
]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name for the key (who or what uses it).")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated scopes: read, predict, write, admin.")
    ] = "read,predict",
    max_series: Annotated[
        int | None,
        typer.Option(
            help="Series this key's fits may hold (0: no limit) [default: ANOMALY_QUOTA_SERIES]",
            show_default=False,
        ),
    ] = None,
    max_points: Annotated[
        int | None,
        typer.Option(
            help="Training points its stored versions may hold (0: no limit) "
            "[default: ANOMALY_QUOTA_POINTS]",
            show_default=False,
        ),
    ] = None,
    retention_days: Annotated[
        float | None,
        typer.Option(
            help="Days its versions are kept, each series' latest excepted (0: until "
            "deleted) [default: ANOMALY_RETENTION_DAYS]",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a key and print it as the last line: it is shown only this once (the store
    keeps its SHA-256 digest)."""
    from anomaly_api.auth import check_name, digest, new_key, parse_scopes
    from anomaly_api.errors import InvalidInput
    from anomaly_api.quotas import Limits

    try:
        chosen = parse_scopes(scopes)
        check_name(name)
        limits = Limits(max_series, max_points, retention_days)
    except InvalidInput as exc:
        raise typer.BadParameter(
            exc.message, param_hint=f"--{(exc.field or '').replace('_', '-')}"
        ) from None
    key = new_key()
    with _key_store(database_url) as store:
        try:
            store.create_key(name, digest(key), chosen, limits)
        except InvalidInput as exc:
            raise typer.BadParameter(exc.message, param_hint="--name") from None
    _audit(
        "key create",
        name=name,
        scopes=list(chosen),
        **{k: v for k, v in dataclasses.asdict(limits).items() if v is not None},
    )
    typer.echo(f"created key {name!r} with scopes {','.join(chosen)}; it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(database_url: DatabaseOption = None) -> None:
    """Every key's name, scopes, creation and revocation times, what its versions hold
    (series, points) and its own limits ("-": the server's default), never the key."""
    import datetime

    def when(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def limit(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    with _key_store(database_url) as store:
        records = store.list_keys()
        usages = [store.usage(record.name) for record in records]
    typer.echo(
        f"{'name':<24} {'scopes':<28} {'created':<21} {'revoked':<21} "
        f"{'series':>8} {'points':>12}  max-series max-points retention-days"
    )
    for record, usage in zip(records, usages, strict=True):
        scopes = ",".join(record.scopes)
        limits = record.limits
        typer.echo(
            f"{record.name:<24} {scopes:<28} {when(record.created_at):<21} "
            f"{when(record.revoked_at):<21} {usage.series:>8} {usage.points:>12}  "
            f"{limit(limits.max_series):<10} {limit(limits.max_points):<10} "
            f"{limit(limits.retention_days)}"
        )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key: every server using the store refuses it within a second."""
    with _key_store(database_url) as store:
        revoked = store.revoke_key(name)
    if not revoked:
        typer.echo(f"keys revoke: no active key named {name!r}", err=True)
        raise typer.Exit(code=2)
    _audit("key revoke", name=name)
    typer.echo(f"revoked key {name!r}")


def _audit(action: str, **detail: object) -> None:
    """An audit line for a key change made here (who: ``cli:`` and the OS user)."""
    import getpass

    from anomaly_api import audit

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    audit.configure(Settings().audit_log)
    audit.record(f"cli:{user}", action, None, **detail)


@contextlib.contextmanager
def _key_store(database_url: str | None) -> Iterator[ModelStore]:
    from anomaly_api.errors import StoreUnavailable
    from anomaly_api.storage import open_store

    try:
        store = open_store(database_url or Settings().database_url)
    except StoreUnavailable as exc:
        typer.echo(f"keys: {exc.message}", err=True)
        raise typer.Exit(code=1) from None
    try:
        yield store
    except StoreUnavailable as exc:
        typer.echo(f"keys: {exc.message}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        store.close()


def main() -> None:
    """Entry point of the ``anomaly-api`` script."""
    app()
