"""Client commands for CSV files: fit a series on a file, or stream a file through the live
path one point per ``POST /predict`` and keep every answer (``anomaly-api fit`` and
``anomaly-api score``).

A file has a header row naming a ``timestamp`` column (Unix seconds or ISO-8601, as the
API takes them) and a ``value`` column; other columns are ignored. The key in
``ANOMALY_API_KEY`` is sent when set. Requests go over one kept-alive connection.
"""

from __future__ import annotations

import csv
import http.client
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from anomaly_api.auth import client_headers

ANSWER_COLUMNS = (
    "timestamp",
    "value",
    "anomaly",
    "score",
    "expected",
    "lower",
    "upper",
    "direction",
    "model_version",
    "incident",
)


class ClientError(Exception):
    """What went wrong, in one line: a file that cannot be read, a server that refused."""

    def __init__(self, message: str, user_mistake: bool = False) -> None:
        super().__init__(message)
        self.user_mistake = user_mistake


def read_points(path: Path) -> list[tuple[str, str]]:
    """The (timestamp, value) texts of a CSV file with ``timestamp`` and ``value`` columns."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = [name.strip().lower() for name in reader.fieldnames or []]
            if "timestamp" not in fields or "value" not in fields:
                raise ClientError(
                    f"{path}: the header must name a 'timestamp' and a 'value' column "
                    f"(found: {', '.join(fields) or 'none'})",
                    user_mistake=True,
                )
            reader.fieldnames = fields
            points = [(row["timestamp"].strip(), row["value"].strip()) for row in reader]
    except OSError as exc:
        raise ClientError(f"{path}: {exc.strerror or exc}", user_mistake=True) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ClientError(f"{path}: not a CSV file ({exc})", user_mistake=True) from None
    if not points:
        raise ClientError(f"{path}: no rows after the header", user_mistake=True)
    return points


def _number(text: str) -> int | float | str:
    """A timestamp as a number when it is one (Unix seconds), else the text (ISO-8601)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _value(text: str, row: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ClientError(f"row {row}: value {text!r} is not a number", True) from None


@dataclass
class Connection:
    """One kept-alive HTTP connection to the service at ``url``."""

    url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"--url {self.url!r} is not an http(s) URL", user_mistake=True)
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else (http.client.HTTPConnection)
        )
        self._connection = factory(parts.hostname, parts.port, timeout=60)
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Content-Type": "application/json", **client_headers()}

    def post(self, path: str, body: Any) -> dict[str, Any]:
        """POST ``body`` as JSON; the JSON answer, or :class:`ClientError` with the
        server's own message."""
        try:
            self._connection.request(
                "POST", self._prefix + path, json.dumps(body).encode(), self._headers
            )
            response = self._connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()
            raise ClientError(f"{self.url} did not answer: {exc}") from None
        try:
            answer: dict[str, Any] = json.loads(raw)
        except ValueError:
            answer = {"detail": raw[:200].decode("utf-8", "replace")}
        if response.status != 200:
            raise ClientError(f"POST {path} answered {response.status}: {answer.get('detail')}")
        return answer

    def close(self) -> None:
        self._connection.close()


def fit_file(
    url: str,
    series_id: str,
    path: Path,
    detector: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``series_id`` on the file's points; the fit's answer."""
    points = read_points(path)
    body: dict[str, Any] = {
        "timestamps": [_number(stamp) for stamp, _ in points],
        "values": [_value(value, row) for row, (_, value) in enumerate(points, start=2)],
    }
    if detector:
        body["detector"] = detector
    if params:
        body["params"] = params
    connection = Connection(url)
    try:
        return connection.post(f"/fit/{quote(series_id, safe='')}", body)
    finally:
        connection.close()


def score_file(
    url: str,
    series_id: str,
    path: Path,
    out: TextIO,
    advance: Callable[[int], object] = lambda count: None,
) -> tuple[int, int]:
    """Send each of the file's points as one ``POST /predict``, in order, writing each
    answer as a CSV row to ``out``; (points, anomalies)."""
    points = read_points(path)
    writer = csv.DictWriter(out, fieldnames=ANSWER_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    connection = Connection(url)
    target = f"/predict/{quote(series_id, safe='')}"
    anomalies = 0
    try:
        for answer in _answers(connection, target, points):
            writer.writerow(answer)
            anomalies += bool(answer.get("anomaly"))
            advance(1)
    finally:
        connection.close()
    return len(points), anomalies


def _answers(
    connection: Connection, target: str, points: list[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    for row, (stamp, value) in enumerate(points, start=2):
        body = {"timestamp": stamp, "value": _value(value, row)}
        try:
            yield connection.post(target, body)
        except ClientError as exc:
            raise ClientError(f"row {row}: {exc}", exc.user_mistake) from None
