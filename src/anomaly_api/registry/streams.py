"""Live streams: what each series observed since its fit, and the context that continues it.

A client fits a series once, then sends each new point as it arrives. Every point scored
for a series (a single predict, a batch, the bulk endpoint) is scored as the
continuation of the training data *and every point observed for that series since*,
then joins that history:

* **Order.** A point joins the history when its timestamp is later than the last one the
  series observed (its training data's last, at first). A point at the same timestamp
  as the last (``repeated_timestamp``) or earlier (``out_of_order``) is scored against
  the history as it stands but does not join it, and the answer says so. With
  ``observe=false`` (``what_if``) nothing joins.
* **Versions.** The history belongs to the series, not to a version: ``?version=N``
  picks the fitted parameters, and its context is the version's own training context
  continued by every point observed after its training data (rebuilt from the kept
  points when another version was in use: the newest ``keep_points`` of them).
* **Where it lives.** One process holds each series' live context at a time (a
  :class:`LiveStream`), under a lease in the store
  (:meth:`~anomaly_api.storage.base.ModelStore.acquire_stream`); another process that
  gets the series asks the holder to save and release it and takes over from what was
  saved, never from part of it. A flusher thread saves the points observed and the
  contexts every ``flush_s`` seconds: after ``kill -9`` at most the observations of the
  last ``flush_s`` (plus one save's duration) are lost; on a clean shutdown none.
* **Memory.** At most ``size`` series are live per process (least recently used beyond
  that are saved and let go, and reloaded on demand), each keeping its context and the
  points not yet saved; the unsaved points of all series are capped by ``max_pending``
  (reached only while the store is down: then observing answers 503).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from anomaly_api.detectors import Scores
from anomaly_api.detectors.bands import PointScore
from anomaly_api.detectors.base import Context
from anomaly_api.detectors.series import FloatArray, IntArray
from anomaly_api.errors import StoreUnavailable, StreamBusy
from anomaly_api.registry.cache import LoadedModel
from anomaly_api.storage.base import JsonDict, ModelStore, StreamUpdate
from anomaly_api.storage.chunks import POINT, anomaly_codes, pack_rows, timestamp_of, unpack

_log = logging.getLogger(__name__)

REPEATED = "repeated_timestamp"
OLDER = "out_of_order"
WHAT_IF = "what_if"
_STRIPES = 64
_RETRY_TAKEOVER_S = 0.02


class LiveStream:
    """One series' stream held by this process: the context that continues it (for the
    version ``model``), its last observed timestamp, and the points not yet saved.

    Touch it only with ``lock`` held; ``released`` means another holder (or a delete)
    took it, and whoever finds it so must look the series up again."""

    __slots__ = (
        "appended",
        "changes",
        "context",
        "last_timestamp",
        "lock",
        "model",
        "observed",
        "pending",
        "released",
        "saved_changes",
        "saved_context",
        "series_id",
        "since_fit",
        "token",
        "verified",
    )

    def __init__(
        self,
        series_id: str,
        token: int,
        last_timestamp: int | None,
        observed: int,
        epoch: int,
        keep_points: int,
    ) -> None:
        self.series_id = series_id
        self.token = token
        self.lock = threading.Lock()
        self.last_timestamp = last_timestamp
        self.observed = observed
        self.model: LoadedModel | None = None
        self.context: Context | None = None
        self.since_fit = 0
        """Points observed after ``model``'s training data."""
        self.pending: deque[bytes] = deque(maxlen=keep_points)
        """Observed points not saved yet (the newest ``keep_points``: older ones would be
        trimmed as soon as they were saved), each packed as a save stores it
        (:data:`anomaly_api.storage.chunks.POINT`; an unwatched side's edge infinite)."""
        self.appended = 0
        """Points ever appended to ``pending`` (saves use it to know what they covered)."""
        self.changes = 0
        self.saved_changes = 0
        self.released = False
        self.verified = epoch
        self.saved_context: tuple[int | None, JsonDict | None] = (None, None)
        """The context the store held for it when taken, and its version."""

    def dirty(self) -> bool:
        return self.changes != self.saved_changes


@dataclass(slots=True)
class _Snapshot:
    entry: LiveStream
    update: StreamUpdate
    appended: int
    changes: int


class Streams:
    """The live streams of this process over one store (see the module docstring)."""

    def __init__(
        self,
        store: ModelStore,
        *,
        owner: str,
        size: int = 100_000,
        flush_s: float = 1.0,
        lease_s: float = 10.0,
        keep_points: int = 10_000,
        max_pending: int = 1_000_000,
        takeover_s: float = 2.0,
    ) -> None:
        self.store = store
        self.owner = owner
        self.size = size
        self.flush_s = flush_s
        self.lease_s = lease_s
        self.keep_points = keep_points
        self.max_pending = max_pending
        self.takeover_s = takeover_s
        self.epoch = 0
        """Bumped when the store cannot say what changed: entries must check their lease."""
        self._entries: OrderedDict[str, LiveStream] = OrderedDict()
        self._evicted: dict[str, LiveStream] = {}
        self._to_release: dict[str, int] = {}
        self._lock = threading.Lock()
        self._saving = threading.RLock()
        """Held from a save's snapshots to its end: saves of one series commit in the
        order of their snapshots, so an older state never overwrites a newer one (the
        flusher's against a request's :meth:`verify`). Taken with no stream lock held."""
        self._loading = [threading.Lock() for _ in range(_STRIPES)]
        self._pending_total = 0
        self.last_save_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        store.watch_releases(self._wake.set)

    # -- the flusher ---------------------------------------------------------------------

    def start(self) -> None:
        """Save every ``flush_s`` seconds (and at once when a release is asked)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stream-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except StoreUnavailable as exc:
                self.last_save_error = exc.message
            except Exception:  # the thread must live on, or nothing is saved again
                _log.exception("saving streams failed")

    def close(self) -> None:
        """Stop the flusher, save everything and let every series go."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(StoreUnavailable):
            self.flush()
            with self._lock:
                tokens = {entry.series_id: entry.token for entry in self._entries.values()}
                tokens.update(self._to_release)
                self._entries.clear()
                self._to_release.clear()
            self.store.release_streams(self.owner, tokens)

    def flush(self) -> None:
        """Save what changed, let evicted series go, and hand over those asked for."""
        asked = self.store.release_requests(self.owner)
        with self._lock:
            candidates = [entry for entry in self._entries.values() if entry.dirty()]
            evicted = list(self._evicted.values())
            holding = bool(self._entries or self._evicted)
        with self._saving:
            snapshots = [self._snapshot(entry) for entry in [*candidates, *evicted]]
            if snapshots or holding:
                self._save(snapshots)
        with self._lock:
            for entry in evicted:
                if self._evicted.get(entry.series_id) is entry and not entry.dirty():
                    del self._evicted[entry.series_id]
                    self._to_release[entry.series_id] = entry.token
            release, self._to_release = self._to_release, {}
        if release:
            self.store.release_streams(self.owner, release)
        for series_id in asked:
            self.hand_over(series_id)

    def _snapshot(self, entry: LiveStream) -> _Snapshot:
        # Under the lock only what must be consistent, the points copied at C speed:
        # predicts of the series wait for it (or take the slow path).
        with entry.lock:
            model = entry.model
            context = None if entry.context is None else orjson.dumps(entry.context.dump())
            pending = list(entry.pending)
            return _Snapshot(
                entry,
                StreamUpdate(
                    series_id=entry.series_id,
                    token=entry.token,
                    points=pending,
                    last_timestamp=entry.last_timestamp,
                    observed=entry.observed,
                    context_version=None if model is None else model.version,
                    context=None if context is None else context.decode(),
                ),
                entry.appended,
                entry.changes,
            )

    def _save(self, snapshots: list[_Snapshot]) -> None:
        try:
            refused = self.store.save_streams(
                self.owner,
                self.lease_s,
                [snapshot.update for snapshot in snapshots],
                self.keep_points,
            )
        except StoreUnavailable as exc:
            self.last_save_error = exc.message
            self._recount()
            raise
        self.last_save_error = None
        for snapshot in snapshots:
            entry = snapshot.entry
            with entry.lock:
                if entry.series_id in refused:
                    # Taken over (the lease ran out) or deleted: what was not saved is lost.
                    self._let_go(entry)
                    continue
                # The points appended since the snapshot are the newest; the rest is saved.
                unsaved = entry.appended - snapshot.appended
                pending = entry.pending
                if unsaved == 0:
                    pending.clear()
                elif unsaved < len(pending):
                    newest = list(pending)[-unsaved:]  # C speed, the lock held briefly
                    pending.clear()
                    pending.extend(newest)
                if entry.changes == snapshot.changes:
                    entry.saved_changes = snapshot.changes
        self._recount()

    def _recount(self) -> None:
        """Count the unsaved points of every live series: the cap's figure, up to one
        flush interval stale, so that the hot path adds to no shared counter."""
        with self._lock:
            held = [*self._entries.values(), *self._evicted.values()]
        self._pending_total = sum(len(entry.pending) for entry in held)

    def _let_go(self, entry: LiveStream) -> None:
        """Forget ``entry`` (its lock held): it is no longer this process's to serve."""
        entry.released = True
        entry.pending.clear()
        with self._lock:
            if self._entries.get(entry.series_id) is entry:
                del self._entries[entry.series_id]
            if self._evicted.get(entry.series_id) is entry:
                del self._evicted[entry.series_id]

    def hand_over(self, series_id: str) -> None:
        """Save the series and release it, because another process asked for it."""
        with self._lock:
            entry = self._entries.pop(series_id, None) or self._evicted.pop(series_id, None)
        if entry is None:
            return
        with entry.lock:
            entry.released = True  # requests waiting for the lock will look it up again
        with self._saving, contextlib.suppress(StoreUnavailable):
            self._save([self._snapshot(entry)])
            self.store.release_streams(self.owner, {series_id: entry.token})

    def forget(self, series_ids: frozenset[str]) -> None:
        """These series were deleted: drop their streams unsaved (the store has none)."""
        for series_id in series_ids:
            with self._lock:
                entry = self._entries.get(series_id) or self._evicted.get(series_id)
            if entry is not None:
                with entry.lock:
                    self._let_go(entry)

    def unsure(self) -> None:
        """The store cannot say what changed: entries check their lease before serving."""
        with self._lock:
            self.epoch += 1

    # -- looking series up ---------------------------------------------------------------

    def live_entries(self) -> OrderedDict[str, LiveStream]:
        """The table :meth:`cached` reads (for a caller that inlines it in a loop)."""
        return self._entries

    def cached(self, series_id: str) -> LiveStream | None:
        """The series' live stream if this process holds it (no I/O), else None."""
        entries = self._entries
        entry = entries.get(series_id)
        if entry is not None:
            try:
                entries.move_to_end(series_id)
            except KeyError:  # let go by another thread just now
                return None
        return entry

    def entry(self, series_id: str) -> LiveStream:
        """The series' live stream, taken from the store (and from another holder, who is
        asked to release it) when this process does not hold it."""
        with self._loading[hash(series_id) % _STRIPES]:
            with self._lock:
                entry = self._entries.get(series_id)
                if entry is None:
                    entry = self._evicted.pop(series_id, None)
                    if entry is not None:
                        self._insert(entry)
            if entry is not None and not entry.released:
                self._entries.move_to_end(series_id)
                return entry
            state = self.store.acquire_stream(series_id, self.owner, self.lease_s)
            if state is None:
                self.store.request_release(series_id, self.owner)
                deadline = time.monotonic() + self.takeover_s
                while state is None:
                    if time.monotonic() > deadline:
                        raise StreamBusy(series_id)
                    time.sleep(_RETRY_TAKEOVER_S)
                    state = self.store.acquire_stream(series_id, self.owner, self.lease_s)
            entry = LiveStream(
                series_id,
                state.token,
                state.last_timestamp,
                state.observed,
                self.epoch,
                self.keep_points,
            )
            entry.saved_context = (state.context_version, state.context)
            with self._lock:
                self._to_release.pop(series_id, None)
                self._insert(entry)
            return entry

    def _insert(self, entry: LiveStream) -> None:
        """Add ``entry`` (table lock held), letting the least recently used go beyond
        ``size``: saved first if it has unsaved changes."""
        self._entries[entry.series_id] = entry
        while len(self._entries) > self.size:
            _, oldest = self._entries.popitem(last=False)
            if oldest.dirty():
                self._evicted[oldest.series_id] = oldest
            else:
                self._to_release[oldest.series_id] = oldest.token

    def verify(self, entry: LiveStream) -> bool:
        """After :meth:`unsure`: save ``entry`` now; False when its lease is gone (it was
        let go, and the caller must look the series up again)."""
        with self._saving:
            self._save([self._snapshot(entry)])
        with entry.lock:
            if entry.released:
                return False
            entry.verified = self.epoch
            return True

    # -- the context of a version -----------------------------------------------------------

    def ready(self, entry: LiveStream, model: LoadedModel) -> None:
        """Make ``entry``'s context continue ``model`` (its lock held): the saved context
        when it is that version's, else the version's training context continued by
        every kept point observed after its training data (store reads)."""
        last = model.record.last_timestamp
        if entry.last_timestamp is None or entry.last_timestamp < last:
            entry.last_timestamp = last
        if entry.model is not None and entry.model.version == model.version:
            entry.model = model
            return
        version, saved = entry.saved_context
        before = None if entry.context is None else entry.context.incident
        if version == model.version and saved is not None and entry.model is None:
            entry.context = model.detector.load_context(saved)
        else:
            timestamps, values = self._history(entry, last)
            entry.context = model.detector.context_after(timestamps, values)
        # The series' open incident outlives a version: keep the latest one known.
        if before is not None and before.last > entry.context.incident.last:
            entry.context.incident = before
        entry.since_fit = self.store.count_stream_points(
            entry.series_id, last, self._first_unsaved(entry)
        ) + sum(1 for point in entry.pending if timestamp_of(point) > last)
        entry.model = model
        entry.changes += 1

    @staticmethod
    def _first_unsaved(entry: LiveStream) -> int | None:
        """Where the unsaved points begin: the store's points from there on are the same
        points, saved by a save that has not told ``entry`` yet (it holds no lock while it
        writes), and must not be counted twice."""
        return timestamp_of(entry.pending[0]) if entry.pending else None

    def _history(self, entry: LiveStream, after: int) -> tuple[IntArray, FloatArray]:
        """The kept points observed after ``after``: saved ones, then unsaved ones."""
        timestamps, values = self.store.stream_points(
            entry.series_id, after, self.keep_points, self._first_unsaved(entry)
        )
        if entry.pending:
            unsaved = unpack(b"".join(entry.pending))
            unsaved = unsaved[unsaved[:, 0] > after]
            timestamps = np.concatenate([timestamps, unsaved[:, 0].astype(np.int64)])
            values = np.concatenate([values, unsaved[:, 1]])
        return timestamps[-self.keep_points :], values[-self.keep_points :]

    def history(self, entry: LiveStream, after: int, limit: int) -> tuple[IntArray, FloatArray]:
        """Up to ``limit`` of the newest points observed after ``after`` (lock held)."""
        timestamps, values = self._history(entry, after)
        return timestamps[-limit:], values[-limit:]

    # -- observing -------------------------------------------------------------------------

    def observe(
        self, entry: LiveStream, timestamp: int, value: float, observe: bool
    ) -> tuple[PointScore, str | None]:
        """Score one point against ``entry`` (lock held, context ready) and, when it is
        news, learn it; the reason it was not observed, or None."""
        model = entry.model
        context = entry.context
        last = entry.last_timestamp
        assert model is not None
        assert context is not None
        assert last is not None
        if not observe:
            return model.detector.peek_one(context, timestamp, value), WHAT_IF
        if timestamp <= last:
            point = model.detector.peek_one(context, timestamp, value)
            return point, REPEATED if timestamp == last else OLDER
        if self._pending_total >= self.max_pending:
            self._refuse()
        point = model.detector.observe_one(context, timestamp, value)
        entry.last_timestamp = timestamp
        entry.observed += 1
        entry.since_fit += 1
        entry.appended += 1
        entry.changes += 1
        entry.pending.append(
            POINT.pack(
                timestamp,
                value,
                model.version,
                point.score,
                1 + point.incident if point.anomaly else 0,  # chunks.anomaly_codes
                point.expected,
                point.lower,
                point.upper,
            )
        )
        return point, None

    def _refuse(self) -> None:
        raise StoreUnavailable(
            "observations cannot be saved: the store has not accepted them for a while "
            f"({self.last_save_error or 'no answer'}); retry when it is back"
        )

    def observe_batch(
        self, entry: LiveStream, timestamps: IntArray, values: FloatArray, observe: bool
    ) -> tuple[Scores, npt.NDArray[np.bool_], str | None]:
        """Score points in order against ``entry`` (lock held, context ready): the runs
        of news as one array each, the others one by one, as :meth:`observe` would.
        Returns the scores, which points joined the history, and (for ``observe=false``)
        why none did."""
        model = entry.model
        context = entry.context
        assert model is not None
        assert context is not None
        assert entry.last_timestamp is not None
        detector = model.detector
        size = values.size
        if size == 0 or not observe:
            scores = detector.score_stream(context.copy(), timestamps, values)
            return scores, np.zeros(size, dtype=np.bool_), None if observe else WHAT_IF
        before = np.maximum.accumulate(np.concatenate([[entry.last_timestamp], timestamps[:-1]]))
        news = timestamps > before
        columns: dict[str, npt.NDArray[Any]] = {
            name: np.empty(size, dtype=dtype)
            for name, dtype in (
                ("expected", np.float64),
                ("lower", np.float64),
                ("upper", np.float64),
                ("score", np.float64),
                ("anomaly", np.bool_),
                ("side", np.int8),
                ("incident", np.int8),
            )
        }
        if news.any() and self._pending_total >= self.max_pending:
            self._refuse()
        # Runs of points that are all news, or all not: [start, end) pairs.
        edges = np.flatnonzero(np.diff(news.view(np.int8))) + 1
        starts = np.concatenate([[0], edges]).tolist()
        ends = np.concatenate([edges, [size]]).tolist()
        for start, end in zip(starts, ends, strict=True):
            run = slice(start, end)
            if not news[start]:
                scores = detector.peek_many(
                    context,
                    timestamps[run].astype(np.float64),
                    values[run].astype(np.float64),
                )
                for name in columns:
                    columns[name][run] = getattr(scores, name)
                continue
            scores = detector.score_stream(context, timestamps[run], values[run])
            for name in columns:
                columns[name][run] = getattr(scores, name)
            self._learned(entry, timestamps[run], values[run], scores, model.version)
        return (
            Scores(
                expected=columns["expected"],
                lower=columns["lower"],
                upper=columns["upper"],
                score=columns["score"],
                anomaly=columns["anomaly"],
                side=columns["side"],
                incident=columns["incident"],
            ),
            news,
            None,
        )

    def _learned(
        self,
        entry: LiveStream,
        timestamps: IntArray,
        values: FloatArray,
        scores: Scores,
        version: int,
    ) -> None:
        """Book a run of observed points into ``entry``: counts and the unsaved points
        (only the newest ``keep_points``: older ones would be trimmed when saved)."""
        count = int(timestamps.size)
        entry.last_timestamp = int(timestamps[-1])
        entry.observed += count
        entry.since_fit += count
        keep = slice(max(count - self.keep_points, 0), count)
        kept = keep.stop - keep.start
        rows = np.empty((kept, 8), dtype=np.float64)
        rows[:, 0] = timestamps[keep]
        rows[:, 1] = values[keep]
        rows[:, 2] = version
        rows[:, 3] = scores.score[keep]
        rows[:, 4] = anomaly_codes(scores.anomaly, scores.incident)[keep]
        rows[:, 5] = np.broadcast_to(scores.expected, (count,))[keep]
        rows[:, 6] = np.broadcast_to(scores.lower, (count,))[keep]
        rows[:, 7] = np.broadcast_to(scores.upper, (count,))[keep]
        entry.pending.extend(pack_rows(rows))
        entry.appended += count
        entry.changes += 1

    def live(self) -> int:
        """Series whose stream this process holds."""
        return len(self._entries)

    def pending(self) -> int:
        """Observed points not saved yet."""
        return self._pending_total
