"""Run directories left behind by servers killed with SIGKILL are removed by the next
``serve``; live servers' directories and unmarked ones are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anomaly_api.bench_server import ServerProcess
from anomaly_api.rundir import PID_FILE, PREFIX, make_run_dir, remove_stale_run_dirs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_directories_of_dead_servers_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    mine = make_run_dir()
    assert mine.parent == tmp_path and (mine / PID_FILE).exists()
    dead = tmp_path / f"{PREFIX}dead"
    dead.mkdir()
    (dead / PID_FILE).write_text(f"{_dead_pid()} 1\n")
    (dead / "metrics.db").write_bytes(b"x" * 1000)
    reused = tmp_path / f"{PREFIX}reused"  # a live pid, but another process's start time
    reused.mkdir()
    (reused / PID_FILE).write_text(f"{os.getppid()} 1\n")
    unmarked = tmp_path / f"{PREFIX}unmarked"
    unmarked.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"{PREFIX}live"
        live.mkdir()
        stat = Path(f"/proc/{sleeper.pid}/stat").read_text()
        started = stat.rsplit(")", 1)[1].split()[19]
        (live / PID_FILE).write_text(f"{sleeper.pid} {started}\n")
        removed = remove_stale_run_dirs()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(removed) == sorted([dead, reused])
    assert mine.exists() and unmarked.exists() and live.exists()


@pytest.mark.slow
def test_a_server_killed_with_sigkill_leaves_nothing_after_the_next_start(
    tmp_path: Path,
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    first = ServerProcess(tmp_path / "m.db", log=tmp_path / "first.log", env=env)
    first.start()
    assert first.process is not None
    (left,) = scratch.glob(f"{PREFIX}*")
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait()
    time.sleep(0.2)
    assert left.exists()  # SIGKILL: nothing could clean up
    with ServerProcess(tmp_path / "m.db", log=tmp_path / "second.log", env=env):
        assert not left.exists()
        assert len(list(scratch.glob(f"{PREFIX}*"))) == 1  # the second server's own
    assert not list(scratch.glob(f"{PREFIX}*"))  # a clean stop removes its own
