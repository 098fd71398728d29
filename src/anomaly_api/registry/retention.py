"""Retention: every :data:`SWEEP_S` delete each key's versions older than its retention
(``ANOMALY_RETENTION_DAYS`` or the key's ``--retention-days``), except each series'
latest version, which keeps serving predicts (see :mod:`anomaly_api.quotas`), and the
observed points older than ``ANOMALY_HISTORY_DAYS`` before their series' newest.

Every process runs the sweep; with several sharing a store they delete the same rows and
only one of them finds any. A deletion is announced as any delete is (caches drop those
versions) and written to the audit log as ``who: "retention"``. A key's expired versions
are gone within about :data:`SWEEP_S` after their time; revoked keys' versions expire too.
"""

from __future__ import annotations

import logging
import threading
import time

from anomaly_api import audit
from anomaly_api.errors import AnomalyApiError
from anomaly_api.quotas import Limits, Quota
from anomaly_api.storage.base import ModelStore

SWEEP_S = 60.0
BATCH = 10_000
"""Versions deleted per key and statement; a sweep repeats until a key has none left."""

_log = logging.getLogger(__name__)


class RetentionSweep:
    """Deletes expired versions of every key (and of anonymous fits) on a thread."""

    def __init__(
        self,
        store: ModelStore,
        defaults: Limits,
        every_s: float = SWEEP_S,
        history_s: float = 0.0,
    ) -> None:
        self.store = store
        self.defaults = defaults
        self.history_s = history_s
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owners(self) -> list[tuple[str | None, float]]:
        """(owner, retention in seconds) of each owner whose versions expire."""
        quotas = [Quota.of(None, Limits(), self.defaults)]
        quotas += [Quota.of(k.name, k.limits, self.defaults) for k in self.store.list_keys()]
        return [(quota.owner, quota.retention_s) for quota in quotas if quota.retention_s > 0]

    def sweep(self, now: float | None = None) -> int:
        """Delete what has expired by ``now``; return how many versions."""
        now = time.time() if now is None else now
        total = 0
        if self.history_s > 0:
            self.store.expire_stream_points(self.history_s)
        for owner, retention_s in self.owners():
            while True:
                deleted = self.store.expire_versions(owner, now - retention_s, BATCH)
                if deleted:
                    audit.record(
                        "retention",
                        "expire",
                        None,
                        owner=owner,
                        versions=deleted,
                        older_than_days=round(retention_s / 86_400.0, 6),
                    )
                total += deleted
                if deleted < BATCH:
                    break
        return total

    def start(self) -> None:
        """Sweep now and every ``every_s`` (keys are read again each time: one with a
        retention may be created at any moment)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except AnomalyApiError as exc:
                _log.warning("retention sweep failed: %s", exc.message)
            if self._stop.wait(self.every_s):
                return
