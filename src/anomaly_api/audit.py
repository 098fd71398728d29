"""The audit log: one JSON line per change to what is stored or to who may enter.

Written by the HTTP layer (:mod:`anomaly_api.api.asgi.audit`: fits, deletes, key
changes, refused ones included) and by the CLI's key commands, on the
``anomaly_api.audit`` logger::

    {"time": "2026-12-04T18:02:11.532Z", "who": "ingest", "action": "fit",
     "client": "10.0.0.7", "method": "POST", "path": "/fit/sensor_1", "status": 200}

``who`` is the API key's name (null when no valid key was sent, always with keys off),
or ``cli:USER`` for the CLI. :func:`configure` sends the lines to standard error (the
server log) or appends them to a file (``ANOMALY_AUDIT_LOG``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

AUDIT = logging.getLogger("anomaly_api.audit")


def record(who: str | None, action: str, status: int | None, **detail: Any) -> None:
    """Write one audit line."""
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "who": who,
        "action": action,
        **detail,
        "status": status,
    }
    AUDIT.info(json.dumps(line, ensure_ascii=True))


def configure(path: str | None) -> None:
    """Send audit lines to ``path`` (appended) or, when None, to standard error (again
    only when the destination changes)."""
    global _destination
    if AUDIT.handlers and _destination == path:
        return
    for old in list(AUDIT.handlers):
        AUDIT.removeHandler(old)
        old.close()
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    AUDIT.addHandler(handler)
    AUDIT.setLevel(logging.INFO)
    AUDIT.propagate = False
    _destination = path


_destination: str | None = None
