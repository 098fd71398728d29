"""An estimate of the memory a cached model holds, for the cache's byte budget
(``ANOMALY_MODEL_CACHE_BYTES``).

Exact accounting (``tracemalloc``, ``sys.getsizeof`` over every object) costs more than
loading the model; this walks the detector's attributes once, when the model enters the
cache: numpy arrays count their buffers, lists and tuples a pointer and (sampled) their
items, nested detectors and dicts their contents. ``benchmarks/model_memory.py`` measures
the real figures it is checked against (``tests/registry/test_sizes.py``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

OBJECT_BYTES = 2048
"""What every cached model costs besides its detector's data: the loaded-model record,
the detector object, its parameter dict, the two cache entries (measured: 3.2 KiB for a
zscore model whose data is a few floats)."""
_SAMPLE = 16
_MAX_DEPTH = 4


def model_bytes(detector: object) -> int:
    """Estimated bytes a cached model of ``detector`` holds."""
    return OBJECT_BYTES + _size(detector, 0)


def _size(value: Any, depth: int) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 112
    if isinstance(value, float | int | bool) or value is None:
        return 24 if isinstance(value, float) else 28
    if isinstance(value, str | bytes):
        return sys.getsizeof(value)
    if depth >= _MAX_DEPTH:
        return 64
    if isinstance(value, list | tuple):
        count = len(value)
        if count == 0:
            return 56
        sample = value[:_SAMPLE]
        each = sum(_size(item, depth + 1) for item in sample) / len(sample)
        return 56 + count * (8 + int(each))
    if isinstance(value, dict):
        return 232 + sum(
            _size(key, depth + 1) + _size(item, depth + 1) for key, item in value.items()
        )
    attributes = getattr(value, "__dict__", None)
    if attributes is not None:
        return 56 + _size(attributes, depth + 1)
    return 64
