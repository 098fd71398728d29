"""The load client: against a real ``uvicorn`` server process, against a stub that
fails on purpose, against nothing at all, and its report formatting on its own."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from anomaly_api.bench import BenchError, BenchReport, format_report, run_bench

STARTUP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``GET /healthcheck`` until it answers 200; fail with the server's log if the
    process exits or the deadline passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthcheck", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"server at {url} did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """A real server process on a free port with its own SQLite file, stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ANOMALY_DATABASE_URL": f"sqlite:///{tmp_path}/bench.db"}
    log = tmp_path / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "anomaly_api.api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.slow
def test_bench_against_a_real_server(server_url: str) -> None:
    report = run_bench(server_url, requests=200, concurrency=10, progress=False)

    assert report.errors == 0, report.error_samples
    assert report.error_samples == ()
    assert report.requests == 200
    assert report.concurrency == 10
    assert report.model_version == "1"
    assert report.fit_ms > 0
    assert report.elapsed_s > 0
    assert report.requests_per_s > 0
    assert 0 < report.p50_ms <= report.p95_ms <= report.p99_ms <= report.max_ms
    assert report.p50_ms <= report.max_ms
    assert 0 < report.mean_ms <= report.max_ms
    # Values are drawn from [-100, 300] against a band of about [-73, 273] (100 +- 3 std
    # of uniform [0, 200]): roughly 13% of the predicts fall outside it.
    assert 5 < report.anomalies < 60
    assert report.healthcheck["series_trained"] == 1
    assert report.healthcheck["inference_latency_ms"]["count"] > 0
    assert report.healthcheck["status"] == "ok"

    # Nothing is left behind in the store: the series the run fitted is deleted.
    with urllib.request.urlopen(f"{server_url}/series") as listing:
        assert json.loads(listing.read())["series"] == []

    text = format_report(report)
    assert "requests/s" in text
    assert f"p99 {report.p99_ms:.2f}" in text
    assert server_url in text
    assert '"series_trained": 1' in text


@pytest.mark.slow
def test_each_run_fits_a_new_version(server_url: str) -> None:
    first = run_bench(server_url, requests=20, concurrency=4, series_id="again", progress=False)
    second = run_bench(server_url, requests=20, concurrency=4, series_id="again", progress=False)

    assert (first.model_version, second.model_version) == ("1", "2")
    assert first.errors == second.errors == 0
    # Same seeded requests against the same training data: the same answers.
    assert first.anomalies == second.anomalies
    assert second.healthcheck["series_trained"] == 1


def test_nothing_listening_raises_bench_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BenchError, match="did not answer") as caught:
        run_bench(url, requests=5, concurrency=2, progress=False)
    assert url in str(caught.value)


class StubHandler(BaseHTTPRequestHandler):
    """Fits succeed (or fail with 422 for the series ``bad``); every third predict answers
    500; the healthcheck answers a small JSON object."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
    predicts = 0
    lock = threading.Lock()

    def _answer(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/fit/bad":
            self._answer(422, {"detail": "values: at least 5 points are needed"})
        elif self.path.startswith("/fit/"):
            self._answer(200, {"version": "7"})
        else:
            with StubHandler.lock:
                StubHandler.predicts += 1
                count = StubHandler.predicts
            if count % 3 == 0:
                self._answer(500, {"detail": "internal error"})
            else:
                self._answer(200, {"anomaly": count % 2 == 0, "model_version": "7"})

    def do_GET(self) -> None:
        self._answer(200, {"series_trained": 1, "stub": True})

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def stub_url() -> Iterator[str]:
    StubHandler.predicts = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_failed_predicts_are_counted_not_fatal(stub_url: str) -> None:
    report = run_bench(stub_url, requests=30, concurrency=5, progress=False, points=10)

    assert report.model_version == "7"
    assert report.errors == 10  # every third of 30
    assert report.error_samples == ('HTTP 500: {"detail": "internal error"}',)
    assert report.anomalies == 10  # the even counts among the 20 that answered 200
    assert report.healthcheck == {"series_trained": 1, "stub": True}
    assert report.p50_ms <= report.p95_ms <= report.p99_ms <= report.max_ms
    assert "errors:     10" in format_report(report)
    assert 'HTTP 500: {"detail": "internal error"}' in format_report(report)


def test_failed_fit_raises_with_status_and_body(stub_url: str) -> None:
    with pytest.raises(BenchError, match="HTTP 422") as caught:
        run_bench(stub_url, requests=5, series_id="bad", progress=False)
    message = str(caught.value)
    assert stub_url in message
    assert "at least 5 points are needed" in message


@pytest.mark.parametrize(("requests", "concurrency"), [(0, 1), (1, 0)])
def test_refuses_empty_runs(requests: int, concurrency: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_bench("http://127.0.0.1:1", requests=requests, concurrency=concurrency)


def make_report(**changes: object) -> BenchReport:
    fields: dict[str, object] = {
        "url": "http://127.0.0.1:8000",
        "series_id": "bench_sample",
        "requests": 5000,
        "concurrency": 100,
        "points": 1000,
        "fit_ms": 12.5,
        "model_version": "3",
        "elapsed_s": 1.25,
        "requests_per_s": 4000.0,
        "p50_ms": 20.0,
        "p95_ms": 31.25,
        "p99_ms": 42.125,
        "mean_ms": 21.5,
        "max_ms": 80.0,
        "errors": 0,
        "anomalies": 321,
        "error_samples": (),
        "healthcheck": {"series_trained": 1, "inference_latency_ms": {"avg": 1.5}},
    }
    fields.update(changes)
    return BenchReport(**fields)  # type: ignore[arg-type]


def test_format_report() -> None:
    text = format_report(make_report())

    assert text.splitlines()[0] == (
        "5000 predict requests, 100 concurrent, against http://127.0.0.1:8000 "
        "(series bench_sample, model version 3)"
    )
    assert "4000.0 requests/s (5000 in 1.250 s)" in text
    assert "p50 20.00  p95 31.25  p99 42.12  mean 21.50  max 80.00" in text
    assert "anomalies:  321 of 5000 answered" in text
    assert "errors:     0" in text
    health = text.split("healthcheck:\n", 1)[1]
    assert json.loads(health) == {"series_trained": 1, "inference_latency_ms": {"avg": 1.5}}
    assert '\n  "series_trained": 1,' in health  # pretty-printed, not one line


def test_format_report_with_errors_and_no_latencies() -> None:
    nan = math.nan
    report = make_report(
        errors=5000,
        anomalies=0,
        error_samples=("HTTP 503: store down", "ServerDisconnectedError"),
        p50_ms=nan,
        p95_ms=nan,
        p99_ms=nan,
        mean_ms=nan,
        max_ms=nan,
    )
    text = format_report(report)

    assert "p50 n/a  p95 n/a  p99 n/a  mean n/a  max n/a" in text
    assert "errors:     5000\n  HTTP 503: store down\n  ServerDisconnectedError\n" in text
    assert "anomalies:  0 of 0 answered" in text
