"""Bounded latency windows for the healthcheck, and how the workers of one server share them.

The original service appended every latency to a list that grew for ever; a window
keeps the most recent ``size`` samples, so memory is fixed and the figures describe
the service as it is now.

One server, several workers
---------------------------
``anomaly-api serve --workers N`` runs N processes, and a healthcheck answered by any of
them must describe all of them. So each worker keeps its figures in a :class:`WorkerStats`:
with a *run directory* (the server's ``PROMETHEUS_MULTIPROC_DIR``) its windows and its
cache size live in a small memory-mapped file there, ``health/worker-<pid>-<n>.stats``,
which the other workers read; without one (tests, library use) they live in private
memory and describe this process only. Recording is a store into memory either way: no
system call per sample. :meth:`WorkerStats.server_view` merges the files of the workers
that are alive (``os.kill(pid, 0)``) and removes those of dead ones.

A file is an ``int64`` header (magic number, pid, models cached, the two window sizes)
followed by the inference window and the training window, each an ``int64`` count of
samples ever written and a ring of ``float64`` seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

_MAGIC = 0x414E4F4D53544131  # "ANOMSTA1": a file whose header is complete
_HEADER_WORDS = 8
_HEADER_BYTES = 8 * _HEADER_WORDS
_MAGIC_AT, _PID_AT, _CACHED_AT, _INFERENCE_SIZE_AT, _TRAINING_SIZE_AT = range(5)
STATS_SUBDIR = "health"
"""Where, under a run directory, the workers' stats files live (apart from Prometheus's)."""

_sequence = itertools.count()


class LatencyWindow:
    """The last ``size`` durations, with their mean and 95th percentile in milliseconds.

    The samples live in ``buffer`` at ``offset`` (``nbytes(size)`` bytes: a count, then a
    ring) when one is given, such as a shared memory map; otherwise in private memory.

    >>> window = LatencyWindow(size=3)
    >>> for seconds in (0.001, 0.002, 0.003, 0.004):
    ...     window.record(seconds)
    >>> window.summary()
    {'avg': 3.0, 'p95': 3.9, 'count': 3}
    """

    def __init__(self, size: int, buffer: bytearray | mmap.mmap | None = None, offset: int = 0):
        if size < 1:
            raise ValueError(f"a latency window holds at least 1 sample, got size={size}")
        self.size = size
        self._lock = threading.Lock()
        self._bind(bytearray(self.nbytes(size)) if buffer is None else buffer, offset)
        self._next = int(self._written[0])

    def _bind(self, store: bytearray | mmap.mmap, offset: int) -> None:
        """Read ``store`` through numpy, write it through plain memoryviews (a third of
        numpy's item assignment on the predict path)."""
        self._written: npt.NDArray[np.int64] = np.frombuffer(
            store, dtype=np.int64, count=1, offset=offset
        )
        self._ring: npt.NDArray[np.float64] = np.frombuffer(
            store, dtype=np.float64, count=self.size, offset=offset + 8
        )
        view = memoryview(store)
        self._written_slot = view[offset : offset + 8].cast("q")
        self._ring_slots = view[offset + 8 : offset + 8 * (1 + self.size)].cast("d")

    @staticmethod
    def nbytes(size: int) -> int:
        """Bytes a window of ``size`` samples takes in a buffer."""
        return 8 * (1 + size)

    def record(self, seconds: float) -> None:
        """Add one duration, pushing out the oldest when the window is full."""
        with self._lock:
            self._ring_slots[self._next % self.size] = seconds
            self._next += 1
            self._written_slot[0] = self._next  # after the sample: readers never count ahead

    def samples(self) -> npt.NDArray[np.float64]:
        """A copy of the samples the window holds, in seconds (in no particular order)."""
        with self._lock:
            return _held(int(self._written[0]), self._ring)

    def summary(self) -> dict[str, float | int]:
        """``avg`` and ``p95`` in milliseconds (0.0 when empty) and the sample ``count``."""
        return summarize(self.samples())

    def release(self) -> None:
        """Drop the views of the buffer, so a memory map under them can close; the
        window goes on in a private copy."""
        with self._lock:
            copy = bytearray(self.nbytes(self.size))
            copy[:8] = self._written.tobytes()
            copy[8:] = self._ring.tobytes()
            self._written_slot.release()
            self._ring_slots.release()
            self._bind(copy, 0)


def _held(written: int, ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return ring.copy() if written >= ring.size else ring[: max(written, 0)].copy()


def summarize(samples: npt.NDArray[np.float64]) -> dict[str, float | int]:
    """``avg`` and ``p95`` in milliseconds (0.0 when empty) and ``count`` of ``samples`` (s).

    >>> summarize(np.array([0.001, 0.003]))
    {'avg': 2.0, 'p95': 2.9, 'count': 2}
    """
    if samples.size == 0:
        return {"avg": 0.0, "p95": 0.0, "count": 0}
    milliseconds = samples * 1000.0
    return {
        "avg": round(float(milliseconds.mean()), 3),
        "p95": round(float(np.percentile(milliseconds, 95)), 3),
        "count": int(samples.size),
    }


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class ServerStats:
    """What the healthcheck reports about every live worker of the server together."""

    inference_latency_ms: dict[str, float | int]
    training_latency_ms: dict[str, float | int]
    models_cached: int
    workers: int


class WorkerStats:
    """One worker's latency windows and model cache size, shared through ``run_dir``.

    With ``run_dir`` None everything stays in this process and :meth:`server_view`
    describes it alone. ``pid`` is for tests that play several workers in one process.
    """

    def __init__(
        self, window_size: int, run_dir: str | os.PathLike[str] | None = None, *, pid: int = 0
    ) -> None:
        self.pid = pid or os.getpid()
        self.path: Path | None = None
        self._map: mmap.mmap | None = None
        inference_at = _HEADER_BYTES
        training_at = inference_at + LatencyWindow.nbytes(window_size)
        nbytes = training_at + LatencyWindow.nbytes(window_size)
        buffer: bytearray | mmap.mmap
        if run_dir is None:
            buffer = bytearray(nbytes)
        else:
            folder = Path(run_dir) / STATS_SUBDIR
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / f"worker-{self.pid}-{next(_sequence)}.stats"
            with open(self.path, "w+b") as file:
                file.truncate(nbytes)
                buffer = self._map = mmap.mmap(file.fileno(), nbytes)
        self._header: npt.NDArray[np.int64] = np.frombuffer(
            buffer, dtype=np.int64, count=_HEADER_WORDS
        )
        self._header[_PID_AT] = self.pid
        self._header[_INFERENCE_SIZE_AT] = window_size
        self._header[_TRAINING_SIZE_AT] = window_size
        self._header[_MAGIC_AT] = _MAGIC  # last: readers skip a file until it is complete
        self.inference = LatencyWindow(window_size, buffer, inference_at)
        self.training = LatencyWindow(window_size, buffer, training_at)

    @property
    def models_cached(self) -> int:
        """Fitted models in this worker's cache, as last set."""
        return int(self._header[_CACHED_AT])

    @models_cached.setter
    def models_cached(self, count: int) -> None:
        self._header[_CACHED_AT] = count

    def server_view(self) -> ServerStats:
        """This worker's figures merged with those of every other live worker."""
        inference = [self.inference.samples()]
        training = [self.training.samples()]
        cached = self.models_cached
        pids = {self.pid}
        for pid, inference_samples, training_samples, models_cached in self._others():
            pids.add(pid)
            inference.append(inference_samples)
            training.append(training_samples)
            cached += models_cached
        return ServerStats(
            inference_latency_ms=summarize(np.concatenate(inference)),
            training_latency_ms=summarize(np.concatenate(training)),
            models_cached=cached,
            workers=len(pids),
        )

    def _others(
        self,
    ) -> Iterator[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64], int]]:
        if self.path is None:
            return
        for path in self.path.parent.glob("worker-*.stats"):
            if path == self.path:
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # its worker shut down meanwhile
                continue
            read = _read_stats(data)
            if read is None:  # still being created, or not ours
                continue
            pid = read[0]
            if not process_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            yield read

    def close(self) -> None:
        """Withdraw this worker from the server's figures and release the file."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.inference.release()
        self.training.release()
        self._header = self._header.copy()
        if self._map is not None:
            # Should a view of the map still be referenced, it closes when collected.
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None


def _read_stats(
    data: bytes,
) -> tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64], int] | None:
    """(pid, inference samples, training samples, models cached) from a stats file's bytes."""
    if len(data) < _HEADER_BYTES:
        return None
    header = np.frombuffer(data, dtype=np.int64, count=_HEADER_WORDS)
    inference_size = int(header[_INFERENCE_SIZE_AT])
    training_size = int(header[_TRAINING_SIZE_AT])
    if header[_MAGIC_AT] != _MAGIC or min(inference_size, training_size) < 1:
        return None
    training_at = _HEADER_BYTES + LatencyWindow.nbytes(inference_size)
    if len(data) != training_at + LatencyWindow.nbytes(training_size):
        return None
    windows = []
    for offset, size in ((_HEADER_BYTES, inference_size), (training_at, training_size)):
        written = int(np.frombuffer(data, dtype=np.int64, count=1, offset=offset)[0])
        ring = np.frombuffer(data, dtype=np.float64, count=size, offset=offset + 8)
        windows.append(_held(written, ring))
    return int(header[_PID_AT]), windows[0], windows[1], int(header[_CACHED_AT])
