"""Anomaly detection service for time series.

Layers, from the inside out: ``detectors`` (pure numpy maths), ``storage`` (the
``ModelStore`` protocol and its SQLite implementation), ``registry`` (versioning,
caching, latency windows), ``api`` (a thin FastAPI layer) and ``cli``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anomaly-api")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
