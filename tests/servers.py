"""Real ``anomaly-api serve`` processes for tests that need more than one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "anomaly-api"
    return [str(script)] if script.exists() else [sys.executable, "-m", "anomaly_api"]


def call(
    url: str, method: str = "GET", body: Any = None, timeout: float = 30, key: str | None = None
) -> tuple[int, Any]:
    """One HTTP request (with ``key`` as a bearer token); returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Server:
    """``anomaly-api serve`` on a free port against ``database`` (a SQLite file, or a
    database URL such as ``postgresql://…``, then with ``log`` given); stop() or kill()."""

    def __init__(
        self,
        database: Path | str,
        workers: int = 1,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        url = database if isinstance(database, str) else f"sqlite:///{database}"
        env = {**os.environ, "ANOMALY_DATABASE_URL": url, **(env or {})}
        if log is None:
            assert isinstance(database, Path), "give a log path for a database URL"
            log = database.with_suffix(f".{self.port}.log")
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*cli_command(), "serve", "--port", str(self.port), "--workers", str(workers)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0, status: int = 200) -> None:
        """Wait until ``/healthcheck`` answers ``status`` (503: up, with its store down)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"server exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                if call(self.url + "/healthcheck", timeout=2)[0] == status:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server on {self.url} did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handler runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
