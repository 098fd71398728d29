"""Who changed what: the per-process change log and the thread that fills it from
PostgreSQL's notifications."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from anomaly_api.storage.base import Changes

_log = logging.getLogger(__name__)

CHANNEL = "anomaly_api_changes"
RECONNECT_INTERVAL_S = 0.5
"""How often the listener retries a lost connection; the store is reported down meanwhile."""
_LISTEN_POLL_S = 0.25
STREAM_CHANNEL = "anomaly_api_streams"
"""Where "please release this series" is asked (payload: the series id), apart from the
change log's channel."""
FIT_PREFIX = "fit "
DELETE_PREFIX = "delete "
DROP_PREFIX = "drop "
CHANGE_LOG_SIZE = 10_000
"""Changes remembered per process; a registry further behind forgets every "latest"."""
HEARD_KEPT = 1_000
"""Notifications remembered for :meth:`ChangeLog.wait_heard`."""


def first_line(error: BaseException) -> str:
    """The driver's message without libpq's indented hints, for one-line answers."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _parse_change(payload: str) -> tuple[str | None, str | None]:
    """A notification's (kind, series id); (None, None) for anything else."""
    for kind, prefix in (("fit", FIT_PREFIX), ("delete", DELETE_PREFIX), ("drop", DROP_PREFIX)):
        if payload.startswith(prefix):
            return kind, payload[len(prefix) :]
    return None, None


class ChangeLog:
    """The changes this process knows of, numbered: the number is the change marker.

    Each entry is a fit, a version delete or a series drop of one series, or None for
    anything else (a copy, a reconnection after which anything may have changed). The newest
    :data:`CHANGE_LOG_SIZE` entries are kept, so a registry that syncs often learns
    exactly which series changed instead of forgetting every series.
    """

    def __init__(self) -> None:
        self.count = 0
        self._entries: deque[tuple[int, str | None, str | None]] = deque(maxlen=CHANGE_LOG_SIZE)
        self._heard: deque[tuple[int, str | None, str | None]] = deque(maxlen=HEARD_KEPT)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def record(self, kind: str | None, series_id: str | None = None, heard: bool = False) -> None:
        """Log a ``"fit"``, ``"delete"`` or ``"drop"`` of ``series_id``; None: anything may
        have changed. ``heard``: it came as a notification (what every replica gets)."""
        with self._lock:
            self._entries.append((self.count + 1, kind, series_id))
            self.count += 1  # published after the entry, so changes_since sees it
            if heard:
                self._heard.append((self.count, kind, series_id))
                self._arrived.notify_all()

    def wait_heard(self, kind: str, series_id: str, after: int, timeout: float) -> bool:
        """Wait until a notification of ``kind`` for ``series_id`` arrives that was logged
        after position ``after``; False when none came within ``timeout`` seconds."""

        def arrived() -> bool:
            return any(
                number > after and (entry_kind, entry_series) == (kind, series_id)
                for number, entry_kind, entry_series in reversed(self._heard)
            )

        with self._lock:
            return self._arrived.wait_for(arrived, timeout)

    def changes_since(self, marker: int) -> tuple[int, Changes] | None:
        """The count now and the series fitted and deleted after ``marker``; None when
        the log cannot tell."""
        with self._lock:
            if marker > self.count or (
                marker < self.count and (not self._entries or self._entries[0][0] > marker + 1)
            ):
                return None  # not a marker of this log, or older than what is kept
            fitted: set[str] = set()
            deleted: set[str] = set()
            dropped: set[str] = set()
            for number, kind, series_id in reversed(self._entries):
                if number <= marker:
                    break
                if series_id is None or kind not in ("fit", "delete", "drop"):
                    return None
                (fitted if kind == "fit" else deleted).add(series_id)
                if kind == "drop":
                    dropped.add(series_id)
            return self.count, Changes(frozenset(fitted), frozenset(deleted), frozenset(dropped))


class ChangeListener:
    """A thread holding one connection that LISTENs on :data:`CHANNEL` and logs what
    arrives; it reconnects by itself and logs a reconnection as "anything changed". It
    also hands the release requests of :data:`STREAM_CHANNEL` to ``on_release``."""

    def __init__(
        self,
        url: str,
        connect_kwargs: Mapping[str, Any],
        changes: ChangeLog,
        on_reconnect: Callable[[], object],
        on_release: Callable[[str], object] = lambda series_id: None,
    ) -> None:
        self._changes = changes
        self._on_reconnect = on_reconnect
        self.on_release = on_release
        self._url = url
        self._kwargs = dict(connect_kwargs)
        self._error: str | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listener", daemon=True)
        self._thread.start()

    def failure(self) -> str | None:
        """Why the latest connection attempt failed, or None while connected (or before
        the first attempt has finished)."""
        return self._error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, **self._kwargs) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    connection.execute(f"LISTEN {STREAM_CHANNEL}")
                    if self._error is not None:
                        # Back after an outage: replace pooled connections it broke before
                        # requests are let through again, so no write meets one.
                        self._on_reconnect()
                    self._changes.record(None)  # anything may have been committed while away
                    self._error = None
                    self.connected.set()
                    while not self._stop.is_set():
                        for notification in connection.notifies(timeout=_LISTEN_POLL_S):
                            if notification.channel == STREAM_CHANNEL:
                                self.on_release(notification.payload)
                            else:
                                kind, series_id = _parse_change(notification.payload)
                                self._changes.record(kind, series_id, heard=True)
                        if connection.closed or connection.broken:
                            raise psycopg.OperationalError("the connection was closed")
            except Exception as exc:
                # Whatever went wrong (a driver error, an undecodable payload, a failing
                # pool check), the thread must live on: without it no change is ever seen
                # again. The store counts as down until it has reconnected.
                if not isinstance(exc, psycopg.Error):
                    _log.exception("PostgreSQL change listener failed; reconnecting")
                self.connected.clear()
                self._error = first_line(exc)
                self._stop.wait(RECONNECT_INTERVAL_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
