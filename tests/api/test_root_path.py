"""Behind a root path (``uvicorn --root-path /anomaly``, as behind a proxy that mounts
the service under a prefix), the layers that decide by path read the path the routes
match: ``/anomaly/keys`` is admin-only like ``/keys``, and the pages open at ``/ui`` and
``/docs`` stay open. (A review found a write key creating an admin key there.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from anomaly_api.auth import digest, new_key
from anomaly_api.storage import open_store
from tests.servers import free_port


def _call(url: str, key: str | None, body: Any = None) -> int:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:  # not listening yet
        return 0


def test_scopes_hold_under_a_root_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'root.db'}"
    writer, reader = new_key(), new_key()
    store = open_store(url)
    store.create_key("writer", digest(writer), ("read", "write", "predict"))
    store.create_key("reader", digest(reader), ("read",))
    store.close()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "anomaly_api.api.app:create_app", "--factory",
         "--root-path", "/anomaly", "--port", str(port), "--log-level", "warning"],
        env={"ANOMALY_AUTH": "required", "ANOMALY_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    # What a proxy that strips /anomaly forwards: uvicorn puts the root path back in front
    # of the path the application sees (scope["path"] "/anomaly/keys").
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _call(f"{base}/healthcheck", None) != 200:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        new = {"name": "evil", "scopes": ["admin", "read"]}
        assert _call(f"{base}/keys", writer, new) == 403
        assert _call(f"{base}/keys", reader) == 403
        assert _call(f"{base}/series", reader) == 200
        assert _call(f"{base}/series", None) == 401
        for page in ("/ui", "/ui/series?id=x", "/ui/assets/ui.js", "/docs"):
            assert _call(base + page, None) == 200, page
    finally:
        process.terminate()
        process.wait(timeout=10)
