"""The core must not pull in a web framework, database driver or plotting library."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ["fastapi", "starlette", "pydantic", "sqlite3", "psycopg", "matplotlib", "uvicorn"]


def test_core_imports_only_numpy_and_stdlib() -> None:
    code = (
        "import sys, anomaly_api.detectors, anomaly_api.detectors.series\n"
        "import anomaly_api.detectors.changepoint, anomaly_api.detectors.decompose\n"
        "import anomaly_api.azure.model\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"the core imported {result.stdout.strip()}"
