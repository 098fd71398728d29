from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.telemetry import (
    STATS_SUBDIR,
    LatencyWindow,
    WorkerStats,
    process_alive,
    summarize,
)


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_window_keeps_the_most_recent_samples() -> None:
    window = LatencyWindow(size=4)
    for milliseconds in range(1, 11):
        window.record(milliseconds / 1000)
    assert sorted(window.samples() * 1000) == pytest.approx([7, 8, 9, 10])
    assert window.summary()["count"] == 4


def test_summary_of_nothing_is_zero() -> None:
    assert summarize(np.array([])) == {"avg": 0.0, "p95": 0.0, "count": 0}
    assert LatencyWindow(size=3).summary() == {"avg": 0.0, "p95": 0.0, "count": 0}


def test_window_refuses_size_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LatencyWindow(size=0)


def test_without_run_dir_the_server_is_this_process() -> None:
    stats = WorkerStats(10)
    stats.inference.record(0.002)
    stats.models_cached = 3
    view = stats.server_view()
    assert (view.workers, view.models_cached) == (1, 3)
    assert view.inference_latency_ms == {"avg": 2.0, "p95": 2.0, "count": 1}
    assert view.training_latency_ms["count"] == 0
    assert stats.path is None
    stats.close()


def test_two_workers_on_one_run_dir_see_each_other(tmp_path: Path) -> None:
    # Two "workers" in one process: this one, and one playing our (live) parent's pid.
    first = WorkerStats(100, tmp_path)
    second = WorkerStats(100, tmp_path, pid=os.getppid())
    for _ in range(3):
        first.inference.record(0.001)
    for _ in range(5):
        second.inference.record(0.003)
    second.training.record(0.010)
    first.models_cached, second.models_cached = 2, 7
    for stats in (first, second):  # whichever answers the healthcheck, the answer is the same
        view = stats.server_view()
        assert view.workers == 2
        assert view.models_cached == 9
        assert view.inference_latency_ms["count"] == 8
        assert view.inference_latency_ms["avg"] == pytest.approx((3 * 1 + 5 * 3) / 8, abs=1e-3)
        assert view.training_latency_ms == {"avg": 10.0, "p95": 10.0, "count": 1}
    second.close()  # a worker that shuts down withdraws its figures
    assert first.server_view().workers == 1
    assert first.server_view().inference_latency_ms["count"] == 3
    first.close()
    assert list((tmp_path / STATS_SUBDIR).iterdir()) == []


def test_files_of_dead_workers_are_skipped_and_removed(tmp_path: Path) -> None:
    live = WorkerStats(10, tmp_path)
    dead = WorkerStats(10, tmp_path, pid=dead_pid())
    dead.inference.record(1.0)
    dead.models_cached = 50
    assert dead.path is not None and dead.path.exists()
    view = live.server_view()
    assert (view.workers, view.models_cached, view.inference_latency_ms["count"]) == (1, 0, 0)
    assert not dead.path.exists()
    dead.close()  # its file is gone already: closing still works
    live.close()


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 16, b"\x00" * 4096, b"not a stats file" * 100],
    ids=["empty", "short", "zeros (being created)", "garbage"],
)
def test_unreadable_files_are_ignored(tmp_path: Path, content: bytes) -> None:
    stats = WorkerStats(10, tmp_path)
    (tmp_path / STATS_SUBDIR / f"worker-{os.getppid()}-0.stats").write_bytes(content)
    assert stats.server_view().workers == 1
    stats.close()


def test_a_truncated_file_is_ignored(tmp_path: Path) -> None:
    stats = WorkerStats(10, tmp_path)
    other = WorkerStats(10, tmp_path, pid=os.getppid())
    assert other.path is not None
    whole = other.path.read_bytes()
    other.close()
    (tmp_path / STATS_SUBDIR / "worker-1-0.stats").write_bytes(whole[:-8])
    assert stats.server_view().workers == 1
    stats.close()


def test_recording_after_close_is_harmless(tmp_path: Path) -> None:
    stats = WorkerStats(10, tmp_path)
    stats.close()
    stats.inference.record(0.001)
    stats.models_cached = 1
    assert stats.server_view().inference_latency_ms["count"] == 1


def test_process_alive() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(dead_pid())
    assert not process_alive(0)


def test_registry_health_covers_every_worker_of_its_run_dir(tmp_path: Path) -> None:
    from anomaly_api.registry import ModelRegistry
    from anomaly_api.storage import open_store

    registry = ModelRegistry(open_store(f"sqlite:///{tmp_path / 'm.db'}"), run_dir=tmp_path)
    other = WorkerStats(1000, tmp_path, pid=os.getppid())
    try:
        registry.fit("s", [1, 2, 3, 4, 5], [10.0, 11.0, 9.0, 12.0, 15.0])
        registry.predict("s", 11.0, 6)
        other.training.record(0.005)
        for _ in range(4):
            other.inference.record(0.001)
        other.models_cached = 3
        health = registry.health()
        assert health["workers"] == 2
        assert health["models_cached"] == 1 + 3
        assert health["training_latency_ms"]["count"] == 2
        assert health["inference_latency_ms"]["count"] == 5
    finally:
        other.close()
        registry.close()
    assert list((tmp_path / STATS_SUBDIR).iterdir()) == []
