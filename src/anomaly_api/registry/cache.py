"""The model cache and how it stays fresh across processes.

Fitted versions are immutable, so a cached ``(series, version)`` model never goes
stale; only the answer to "which version is latest?" can, and a delete can remove a
version. Before resolving a model the cache reads the store's
:meth:`~anomaly_api.storage.base.ModelStore.change_marker` (a memory read on both
backends: SQLite's commit announcement file, PostgreSQL's count of NOTIFY messages).
When it moved, some process committed something, and the store's change log says what:
the series that were fitted forget their latest version, the series that lost a version
forget every cached model, and every other series keeps what it has. Hence the
guarantees: **a predict that starts after a fit was acknowledged answers with that
version or a newer one**, for every process sharing a SQLite file, and on PostgreSQL for
the process that made the fit (other replicas follow once the notification arrives:
milliseconds, the README gives the measured bound); **a deleted version is never
served** once its delete is known. When the log cannot tell (it no longer reaches back,
a copy between stores, a reconnection), every latest version is forgotten, and every
cached model too if the store's deletion epoch moved.

While the store is unreachable (PostgreSQL down), models held in this process's cache
keep answering: availability of predictions is preferred to freshness during an outage,
and every answer names the version it used. That includes a fit announced just before
the outage that could not be read yet (except for "latest" of that series), but not a
series with an announced delete, nor anything when the changes cannot be described: then
any held model might be a deleted one. Anything that needs the store is a
:class:`~anomaly_api.errors.StoreUnavailable` (503). When the store is back, the
marker moves and the caches resynchronise.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import replace

from anomaly_api import metrics
from anomaly_api.detectors import Detector, ZScoreDetector, detector_class
from anomaly_api.errors import SeriesNotFound, StoreUnavailable, VersionNotFound
from anomaly_api.registry.lru import LRU
from anomaly_api.registry.retrain import RetrainPolicy, retrain_marks
from anomaly_api.registry.sizes import model_bytes
from anomaly_api.storage.base import ModelRecord, ModelStore
from anomaly_api.telemetry import WorkerStats

FREEZE_EVERY = 1000
"""With ``freeze_models``, freeze after this many models were cached (or a tenth of the
cache, if more); see :func:`_collect_and_freeze`."""


class LoadedModel:
    """A stored version together with its ready-to-score detector.

    What a single predict needs is also copied here, into one object made at once: with
    10^5 cached models, a predict of a model no recent request touched paid a cache miss
    for each object it read (the record, its parameter dict, the detector, its attribute
    values), about a fifth of the predict's CPU time.
    """

    __slots__ = (
        "bulk_row",
        "detector",
        "detector_name",
        "direction",
        "nbytes",
        "policy",
        "record",
        "series_id",
        "threshold",
        "trained_until",
        "version",
        "version_text",
    )

    def __init__(self, record: ModelRecord, detector: Detector) -> None:
        # The detector was built from the record's state: the cache does not keep the
        # state a second time (as JSON values it took 64 KiB of a weekly model's 82).
        self.record = replace(record, state={}) if record.state else record
        self.detector = detector
        self.nbytes = model_bytes(detector)
        """Estimated memory the cached model holds (:mod:`~anomaly_api.registry.sizes`)."""
        self.series_id = record.series_id
        self.version = record.version
        self.version_text = str(record.version)  # the wire's model_version
        self.detector_name = record.detector
        self.threshold: float | None = record.params.get("threshold")
        self.direction: str = detector.params.get("direction", "both")
        self.policy = RetrainPolicy.from_json(record.retrain)
        self.trained_until = record.last_timestamp
        self.bulk_row: tuple[float, ...] | None = (
            detector._across
            + retrain_marks(self.policy, record.last_timestamp)
            + (float(record.version),)
            if isinstance(detector, ZScoreDetector)
            else None
        )
        """For a zscore model, what the bulk path gathers of it as one tuple: the
        detector's constants (:meth:`ZScoreDetector.observe_across`), the retrain
        marks (:func:`retrain_marks`) and the version."""


def _weight(model: LoadedModel) -> int:
    return model.nbytes


class ModelCache:
    """Fitted models of many series held in memory (LRU), kept fresh by the store's
    change marker (see the module docstring)."""

    def __init__(
        self,
        store: ModelStore,
        stats: WorkerStats,
        *,
        size: int = 10_000,
        max_bytes: int | None = None,
        freeze_models: bool = False,
        on_dropped: Callable[[frozenset[str]], object] = lambda series_ids: None,
        on_unsure: Callable[[], object] = lambda: None,
    ) -> None:
        self.store = store
        self.on_dropped = on_dropped
        """Told which series were deleted as a whole (their streams are gone)."""
        self.on_unsure = on_unsure
        """Told when the store could not say what changed."""
        self.stats = stats
        self.lock = threading.Lock()
        self.models: LRU[tuple[str, int], LoadedModel] = LRU(size, max_bytes, _weight)
        # Each series' latest model, so that a predict of latest is one lookup: at 10^5
        # series the second lookup (through the version) cost ~10% of a cached predict.
        # A model can be in both maps; the pair holds at most twice ``size``.
        self.latest: LRU[str, LoadedModel] = LRU(size, max_bytes, _weight)
        self.generation = 0
        self._freeze_models = freeze_models
        self._inserted_since_freeze = 0
        # Nothing is read eagerly beyond these, and a store that is down at start-up
        # (PostgreSQL not up yet) is fine: an unknown marker makes the first request sync.
        self.marker: int | None = None
        self.position: int | None = None
        self.store_epoch: int | None = None
        self.deletions_seen = 0
        """Deletes this cache has noticed (see :meth:`add_fitted`)."""
        try:
            self.store_epoch = store.deletion_epoch()
            self.marker = store.change_marker()
            self.position = store.change_position()
        except StoreUnavailable:
            pass

    def cached(self, series_id: str, version: int | None) -> LoadedModel | None:
        """The model if it is in memory and known current, without any store I/O beyond
        the change marker; None otherwise."""
        marker = self.store.change_marker()
        with self.lock:
            if marker != self.marker:
                return None
            if version is None:
                return self.latest.get(series_id)
            return self.models.get((series_id, version))

    def held_now(self, series_id: str, version: int | None) -> LoadedModel | None:
        """The model held for ``version`` (latest when None), for a caller that checked
        the change marker itself (a bulk request checks it once)."""
        with self.lock:
            if version is None:
                return self.latest.get(series_id)
            return self.models.get((series_id, version))

    def current(self) -> bool:
        """Whether nothing was committed since this cache last synced (a memory read)."""
        return self.store.change_marker() == self.marker

    def model(self, series_id: str, version: int | None = None) -> LoadedModel:
        """The fitted model for ``version`` (latest when None), from cache or store."""
        try:
            generation = self.sync()
        except StoreUnavailable:
            # The store announced a change it cannot now tell us about. A model held here
            # still answers (it names its version); anything else needs the store.
            held = self.held(series_id, version)
            if held is None:
                raise
            metrics.record_cache_hit()
            return held
        if version is not None:
            return self.load(series_id, version, generation, asked_latest=False)
        with self.lock:
            held = self.latest.get(series_id)
        if held is not None:
            metrics.record_cache_hit()
            return held
        latest = self.store.latest_version(series_id)
        if latest is None:
            raise SeriesNotFound(series_id)
        loaded = self.load(series_id, latest, generation, asked_latest=True)
        with self.lock:
            # Only remember it if no commit was noticed since this request synced;
            # otherwise the answer may predate that commit.
            if self.generation == generation:
                self.latest[series_id] = loaded
        return loaded

    def load(
        self, series_id: str, version: int, generation: int, asked_latest: bool
    ) -> LoadedModel:
        """``version`` from the cache or the store (cached when nothing changed since
        ``generation``)."""
        with self.lock:
            cached = self.models.get((series_id, version))
        if cached is not None:
            metrics.record_cache_hit()
            return cached
        metrics.record_cache_miss()
        record = self.store.get_model(series_id, version)
        if record is None and asked_latest:
            # Deleted between the two reads: whatever is latest now.
            record = self.store.get_model(series_id)
            if record is None:
                raise SeriesNotFound(series_id)
            version = record.version
        if record is None:
            latest_version = self.store.latest_version(series_id)
            if latest_version is None:
                raise SeriesNotFound(series_id)
            raise VersionNotFound(series_id, version, latest_version)
        loaded = LoadedModel(
            record, detector_class(record.detector).from_state(record.params, record.state)
        )
        with self.lock:
            if self.generation == generation:
                self.models[(series_id, version)] = loaded
                self.changed(inserted=True)
        return loaded

    def add_fitted(self, loaded: LoadedModel, deletions_seen: int) -> None:
        """Cache a model this process just stored, unless a delete was noticed since
        ``deletions_seen`` (read before the store call): that delete may have removed
        this very version, and caching it would serve a deleted model. A delete noticed
        later drops it like any other cached version of its series."""
        with self.lock:
            if self.deletions_seen == deletions_seen:
                self.models[(loaded.series_id, loaded.version)] = loaded
                self.changed(inserted=True)

    def held(self, series_id: str, version: int | None) -> LoadedModel | None:
        """The cached model for ``version`` (the remembered latest when None), if it may
        still answer while the store cannot be read: only when the changes not yet
        applied are known and none of them deleted a version of this series, and for
        latest only if the series was not refitted."""
        with self.lock:
            known = self.position
        try:
            found = None if known is None else self.store.changes_since(known)
        except StoreUnavailable:
            found = None
        if found is None:
            return None
        changes = found[1]
        if series_id in changes.deleted or (version is None and series_id in changes.fitted):
            return None
        with self.lock:
            if version is None:
                return self.latest.get(series_id)
            return self.models.get((series_id, version))

    def sync(self) -> int:
        """Drop what other commits outdated; return the cache generation."""
        marker = self.store.change_marker()
        with self.lock:
            if marker == self.marker:
                return self.generation
            known = self.position
        found = None if known is None else self.store.changes_since(known)
        if found is not None:
            position, changes = found
            with self.lock:
                # Even if another thread moved the position meanwhile (possibly to an older
                # one), these series must be forgotten before this request reads them.
                if self.position == known:
                    self.marker, self.position = marker, position
                self.generation += 1  # in-flight reads of latest must not be kept
                for series_id in changes.fitted | changes.deleted:
                    self.latest.pop(series_id, None)
                if changes.deleted:
                    self.deletions_seen += 1
                    for key in [key for key in self.models if key[0] in changes.deleted]:
                        self.models.pop(key, None)
                    self.changed()
            if changes.dropped:
                self.on_dropped(changes.dropped)
            return self.generation
        # The log cannot tell: read where it stands first, so nothing after is missed.
        position = self.store.change_position()
        epoch = self.store.deletion_epoch()
        self.on_unsure()
        with self.lock:
            if marker != self.marker:
                self.marker, self.position = marker, position
                self.generation += 1
                self.latest.clear()
                if epoch != self.store_epoch:
                    self.store_epoch = epoch
                    self.deletions_seen += 1
                    self.models.clear()
                    self.changed()
            return self.generation

    def changed(self, inserted: bool = False) -> None:
        """Publish the model cache's size; call it with the lock held."""
        size = len(self.models)
        self.stats.models_cached = size
        metrics.set_cache_size(size)
        if inserted and self._freeze_models:
            self._inserted_since_freeze += 1
            if self._inserted_since_freeze >= max(FREEZE_EVERY, self.models.maxsize // 10):
                self._inserted_since_freeze = 0
                _collect_and_freeze()


def _collect_and_freeze() -> None:
    """Collect what is garbage, then exempt every live object, the cached models among
    them, from later full collections.

    A cached model is a handful of container objects; with 10^5 models the collector's
    full passes walked ~10^6 objects (~0.3 s on the development machine, once every few
    seconds while the cache filled, and still now and then once warm: the p99 of a warm
    random-series load was 100-200 ms). Objects frozen here are still freed by reference
    counting when evicted; collecting first means no cyclic garbage is frozen with them.
    The collection itself walks only what was not frozen before, so it is short.
    """
    gc.collect()
    gc.freeze()
