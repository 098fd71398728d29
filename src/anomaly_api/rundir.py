"""The run directory ``anomaly-api serve`` makes for its workers (metrics files, worker
slots, sockets between workers), and the clean-up of those left by servers killed
with SIGKILL, which cannot remove their own.

Each directory holds ``serve.pid``: the pid of the ``serve`` process that made it and
that process's start time (from ``/proc``, so that a pid reused by another process is
not taken for the server). A directory whose server is gone is removed by the next
``serve`` that starts on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "anomaly-api-run-"
PID_FILE = "serve.pid"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None: no such process, or
    no ``/proc`` to tell)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after it
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return started is None or _start_time(pid) in (None, started)


def make_run_dir() -> Path:
    """A fresh run directory in the temporary directory, marked with this process."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX))
    pid = os.getpid()
    (path / PID_FILE).write_text(f"{pid} {_start_time(pid) or '-'}\n")
    return path


def remove_stale_run_dirs(parent: Path | None = None) -> list[Path]:
    """Remove the run directories under ``parent`` (the temporary directory) whose
    ``serve`` process is gone; returns them. Directories without a pid file (being
    made just now, or not ours) are left alone."""
    removed = []
    for path in Path(parent or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid_text, started = (path / PID_FILE).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid, None if started == "-" else started):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(path)
            removed.append(path)
    return removed
