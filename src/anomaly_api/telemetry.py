"""Bounded latency windows for the healthcheck.

The original service appended every latency to a list that grew for ever; a window
keeps the most recent ``size`` samples, so memory is fixed and the figures describe
the service as it is now.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class LatencyWindow:
    """The last ``size`` durations, with their mean and 95th percentile in milliseconds.

    >>> window = LatencyWindow(size=3)
    >>> for seconds in (0.001, 0.002, 0.003, 0.004):
    ...     window.record(seconds)
    >>> window.summary()
    {'avg': 3.0, 'p95': 3.9, 'count': 3}
    """

    def __init__(self, size: int) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, seconds: float) -> None:
        """Add one duration, pushing out the oldest when the window is full."""
        with self._lock:
            self._samples.append(seconds)

    def summary(self) -> dict[str, float | int]:
        """``avg`` and ``p95`` in milliseconds (0.0 when empty) and the sample ``count``."""
        with self._lock:
            samples = np.fromiter(self._samples, dtype=np.float64)
        if samples.size == 0:
            return {"avg": 0.0, "p95": 0.0, "count": 0}
        milliseconds = samples * 1000.0
        return {
            "avg": round(float(milliseconds.mean()), 3),
            "p95": round(float(np.percentile(milliseconds, 95)), 3),
            "count": int(samples.size),
        }
