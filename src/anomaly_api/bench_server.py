"""A throwaway ``anomaly-api serve`` process for the benchmarks.

``anomaly-api bench --serve`` and the scaling benchmark measure a real server, started
the way users start it (the CLI, uvloop, httptools, one worker), on a free port with
its own SQLite file and whatever ``ANOMALY_*`` settings the measurement needs. The
process gets its own session (process group), so stopping it also stops anything it
started, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

#: How long a starting server may take to answer its healthcheck.
STARTUP_TIMEOUT_S = 60.0
#: Lines of the server's log quoted when it fails.
LOG_TAIL_LINES = 30


class ServerError(RuntimeError):
    """The server process did not start, or exited early."""


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command() -> list[str]:
    """``anomaly-api`` from this interpreter's environment (``python -m`` as fallback)."""
    script = Path(sys.executable).parent / "anomaly-api"
    return [str(script)] if script.exists() else [sys.executable, "-m", "anomaly_api"]


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of a process from ``/proc`` (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class ServerProcess:
    """``anomaly-api serve`` on a free port against ``database``, stopped on exit.

    ``env`` adds ``ANOMALY_*`` settings (e.g. ``ANOMALY_MODEL_CACHE_SIZE``). The log
    level defaults to ``warning``: uvicorn's per-request access log would otherwise
    cost the server more than many requests do.
    """

    def __init__(
        self, database: Path, log: Path, env: dict[str, str] | None = None, workers: int = 1
    ) -> None:
        self.database = database
        self.log_path = log
        self.env = {
            **os.environ,
            "ANOMALY_DATABASE_URL": f"sqlite:///{database}",
            "ANOMALY_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and wait until ``GET /healthcheck`` answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *cli_command(),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"anomaly-api serve exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthcheck", timeout=2.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"anomaly-api serve on {self.url} did not answer within {STARTUP_TIMEOUT_S} s:\n"
            f"{self.log_tail()}"
        )

    def rss_bytes(self) -> int | None:
        """The server's resident memory (one worker: the process itself)."""
        if self.process is None or self.process.poll() is not None:
            return None
        return process_rss_bytes(self.process.pid)

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL it if it does not exit in time."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        _wait_for_group_exit(process.pid)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the id now belongs to others
        return False
    return True


def _wait_for_group_exit(group: int, timeout_s: float = 10.0) -> None:
    """Wait until no process of ``group`` is left, SIGKILLing what remains after
    ``timeout_s``: a worker that outlives the parent for a moment can still be writing
    files, e.g. into a temporary directory the caller is about to remove."""
    for kill in (False, True):
        if kill and _group_alive(group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _group_alive(group):
                return
            time.sleep(0.02)


@contextlib.contextmanager
def target_url(url: str, serve: bool, workers: int = 1) -> Iterator[str]:
    """``url`` itself, or (``serve``) the URL of a throwaway server (``workers`` worker
    processes) with a fresh SQLite file in a temporary directory, stopped and removed
    afterwards."""
    if not serve:
        yield url
        return
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="anomaly-bench-")))
        server = stack.enter_context(
            ServerProcess(workdir / "bench.db", log=workdir / "server.log", workers=workers)
        )
        yield server.url
