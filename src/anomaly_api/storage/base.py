"""The ``ModelStore`` protocol: what the registry needs from persistent storage.

A store keeps immutable model versions. Its one piece of real logic is version
numbering, which must be atomic in the database itself (a transaction that bumps a
per-series counter), because several threads, worker processes or replicas may fit
the same series at once. Numbers are never reused: deleting versions or a whole
series leaves the counter where it was, so a version number, once answered, always
means the same model.

Implementations: :class:`~anomaly_api.storage.sqlite.SQLiteModelStore` (one machine) and
:class:`~anomaly_api.storage.postgresql.PostgreSQLModelStore` (replicas sharing one
database); both pass the same test suite (``tests/storage/test_store.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from anomaly_api.auth import KeyRecord
from anomaly_api.detectors.series import FloatArray, IntArray, Series
from anomaly_api.quotas import NO_LIMITS, Limits, Quota, Usage

JsonDict = dict[str, Any]
ActiveKey = tuple[str, str, tuple[str, ...], Limits]
"""What the keyring loads of a key: digest, name, scopes, limits."""


@dataclass(frozen=True, slots=True)
class NewModel:
    """A fitted model about to be stored; the store assigns version and creation time."""

    series_id: str
    detector: str
    params: JsonDict
    state: JsonDict
    points_used: int
    first_timestamp: int
    last_timestamp: int
    training: Series
    """The training points kept for plots and re-fits (already capped by the registry)."""
    trigger: str = "client"
    """Who asked for it: ``"client"`` (a fit) or ``"retrain"`` (the series' retrain policy)."""
    retrain: JsonDict | None = None
    """The series' retrain policy from this version on (None: none)."""
    prune: Retention | None = None
    """After storing, delete the series' automatic versions this rule does not keep."""
    created_by: str | None = None
    """The API key whose fit this is (for a retrain, the key of the version retrained);
    None: anonymous."""
    quota: Quota | None = None
    """Refuse (:class:`~anomaly_api.errors.QuotaExceeded`) in the same transaction when
    storing this would take ``created_by`` over its quota."""


@dataclass(frozen=True, slots=True)
class Retention:
    """Which automatic (``trigger == "retrain"``) versions of a series stay: the newest
    ``keep``, and any younger than ``keep_seconds``. Client fits stay until deleted, and
    the latest version always stays."""

    keep: int
    keep_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One stored, immutable model version (without its training points)."""

    series_id: str
    version: int
    detector: str
    params: JsonDict
    state: JsonDict
    points_used: int
    points_stored: int
    first_timestamp: int
    last_timestamp: int
    created_at: float
    """Unix seconds (UTC) when the version was committed."""
    trigger: str = "client"
    retrain: JsonDict | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A stored version with its training points: what copying between stores moves."""

    record: ModelRecord
    training: Series


@dataclass(frozen=True, slots=True)
class Changes:
    """What other commits did since a position of the store's change log: the series
    that got new versions, and those that lost some (a deleted version or series)."""

    fitted: frozenset[str]
    deleted: frozenset[str]
    dropped: frozenset[str] = frozenset()
    """Series deleted as a whole (their streams are gone too); also in ``deleted``."""


ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"
_TO_LOWER = str.maketrans(ASCII_UPPER, ASCII_LOWER)


def ascii_lower(text: str) -> str:
    """``text`` with its ASCII capitals in lower case, other letters kept: what both stores
    compare in :meth:`ModelStore.list_series` (SQLite's ``lower`` folds only ASCII)."""
    return text.translate(_TO_LOWER)


POINT_FIELDS = ("timestamp", "value", "version", "score", "anomaly", "expected", "lower", "upper")
"""The layout of a stream point tuple: what the service observed and answered for it
(``lower``/``upper`` None on a side that is not watched; ``anomaly`` 0 for a normal
point, else the code of :func:`anomaly_api.storage.chunks.anomaly_codes`, which also
tells the incident marker)."""
StreamPoint = tuple[int, float, int, float, int, float, float | None, float | None]


@dataclass(slots=True)
class StreamState:
    """A series' stream as last saved, handed to the process that takes it over."""

    series_id: str
    token: int
    """This holder's lease token: saves carrying another one are refused."""
    last_timestamp: int | None
    observed: int
    """Points observed since the series' stream began."""
    context_version: int | None
    """The version whose rolling context was saved (None: nothing saved yet)."""
    context: JsonDict | None


@dataclass(slots=True)
class StreamUpdate:
    """What a holder saves for one series: the points observed since its last save, in
    order, and the state after them. (Not frozen: a save builds one per live series every
    second, and a frozen dataclass costs several times more to build.)"""

    series_id: str
    token: int
    points: Sequence[bytes]
    """The points, each packed as :data:`anomaly_api.storage.chunks.POINT` holds it."""
    last_timestamp: int | None
    observed: int
    context_version: int | None
    context: str | None
    """The rolling context as JSON text."""


@dataclass(slots=True)
class ExportedStream:
    """A series' stream as last saved, whole, for copying it to another store
    (``anomaly-api migrate``): its state, the context as the JSON text stored, and every
    point kept, oldest first, with what was answered for it."""

    series_id: str
    last_timestamp: int | None
    observed: int
    context_version: int | None
    context: str | None
    points: list[StreamPoint]


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """A series in listings: its latest version and how many versions it has."""

    series_id: str
    latest_version: int
    version_count: int
    points_used: int
    last_fit_at: float


class ModelStore(Protocol):
    """Persistent, versioned storage of fitted models.

    Every method may raise :class:`~anomaly_api.errors.StoreUnavailable` when the
    database does not answer; none returns a half-written version.
    """

    backend: str
    """A short name for health reports: ``"sqlite"``, ``"postgresql"``."""

    def create_version(self, model: NewModel) -> ModelRecord:
        """Store ``model`` as the next version of its series, atomically, and durably;
        first check its quota, if it has one, in the same transaction."""
        ...

    def usage(self, owner: str | None, series_id: str | None = None) -> Usage:
        """What ``owner``'s versions hold: series, stored training points, and whether
        ``series_id`` is among them."""
        ...

    def expire_versions(self, owner: str | None, before: float, limit: int = 10_000) -> int:
        """Delete up to ``limit`` versions of ``owner`` created before ``before`` (Unix
        seconds) that are not the latest of their series; return how many."""
        ...

    def get_model(self, series_id: str, version: int | None = None) -> ModelRecord | None:
        """The given version, or the latest when ``version`` is None; None if absent."""
        ...

    def latest_version(self, series_id: str) -> int | None:
        """The highest stored version of the series, None when it has none."""
        ...

    def list_versions(
        self, series_id: str, after: int = 0, limit: int | None = None
    ) -> list[ModelRecord]:
        """The stored versions of the series numbered above ``after``, oldest first; at
        most ``limit`` of them (every one when None)."""
        ...

    def list_series(
        self, limit: int, after: str | None = None, contains: str | None = None
    ) -> list[SeriesSummary]:
        """Series with at least one version, ordered by id, starting after ``after``;
        with ``contains``, only the ids holding that text, ASCII letters in either case
        (:func:`ascii_lower`; other letters as they are, the same in every store)."""
        ...

    def count_series(self) -> int:
        """How many series have at least one stored version."""
        ...

    def training_data(self, series_id: str, version: int) -> Series | None:
        """The training points stored with a version; None when the version is absent."""
        ...

    def delete_series(self, series_id: str) -> int:
        """Delete every version of the series; return how many were deleted."""
        ...

    def delete_version(self, series_id: str, version: int) -> bool:
        """Delete one version; return whether it existed."""
        ...

    def change_marker(self) -> int:
        """A number that changes whenever any process commits a change; cheap to call."""
        ...

    def change_position(self) -> int:
        """Where the store's change log stands: pass it to :meth:`changes_since` later."""
        ...

    def changes_since(self, position: int) -> tuple[int, Changes] | None:
        """The log's new position and what fits and deletes committed after
        ``position``; None when the store cannot tell (the log no longer reaches back so
        far, a copy between stores happened, or a reconnection may have missed some).
        Lets caches forget one series instead of every series."""
        ...

    def deletion_epoch(self) -> int:
        """A counter bumped by every delete, so caches know when to drop versions."""
        ...

    def export_versions(self, batch_size: int = 500) -> Iterator[list[StoredVersion]]:
        """Every stored version with its training points, in (series, version) order, a
        batch at a time (for ``anomaly-api migrate``)."""
        ...

    def series_counters(self) -> dict[str, int]:
        """Each series' version counter, including series whose versions were all deleted
        (their numbers must not be reused after a copy either)."""
        ...

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        """Store copied versions under their own numbers and creation times, in one
        transaction, and raise each series' counter to at least ``counters`` and its
        highest copied version. Versions already present are left alone, so an interrupted
        copy can be run again. Returns how many versions were inserted."""
        ...

    # -- streams: the points each series observed, and who holds its live context ---------

    def acquire_stream(self, series_id: str, owner: str, lease_s: float) -> StreamState | None:
        """Take the series' stream for ``owner`` (an id unique to a live process) with a
        fresh token, if it is free, held by ``owner`` already, or held by an owner whose
        lease (renewed by every :meth:`save_streams`) ran out; None while another live
        owner holds it."""
        ...

    def save_streams(
        self, owner: str, lease_s: float, updates: Sequence[StreamUpdate], keep_points: int
    ) -> set[str]:
        """In one transaction: renew ``owner``'s lease, and for every update whose token
        still holds append its points and replace its state, keeping the newest
        ``keep_points`` points of each series. Returns the series whose updates were
        refused: taken over by another owner, or deleted."""
        ...

    def stream_state(self, series_id: str) -> StreamState | None:
        """The series' stream as last saved (token 0: nothing is taken), or None."""
        ...

    def release_streams(self, owner: str, tokens: Mapping[str, int]) -> None:
        """Give up these series (saved beforehand), so others can take them at once."""
        ...

    def request_release(self, series_id: str, requester: str) -> None:
        """Ask the series' holder to save and release it (see :meth:`release_requests`)."""
        ...

    def release_requests(self, owner: str) -> list[str]:
        """Series someone asked to be released since the last call (forgetting the asks):
        those ``owner`` holds, possibly with others, which the caller ignores."""
        ...

    def watch_releases(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` (from any thread) as soon as a release is asked, where the store
        can tell at once (PostgreSQL); otherwise :meth:`release_requests` is polled."""
        ...

    def stream_points(
        self, series_id: str, after: int, limit: int, before: int | None = None
    ) -> tuple[IntArray, FloatArray]:
        """Timestamps and values of the observed points after ``after`` (and before
        ``before``), oldest first; the newest ``limit`` of them when there are more."""
        ...

    def scored_points(
        self,
        series_id: str,
        after: int,
        before: int,
        limit: int,
        anomalies_only: bool = False,
    ) -> list[StreamPoint]:
        """The saved points the series observed strictly between ``after`` and
        ``before``, oldest first, with what was answered for each: the first ``limit``
        of them (only the anomalous ones with ``anomalies_only``)."""
        ...

    def expire_stream_points(self, window_s: float) -> int:
        """Delete the saved points older than ``window_s`` before their series' newest
        (whole chunks: one save's points each); return how many chunks went."""
        ...

    def count_stream_points(self, series_id: str, after: int, before: int | None = None) -> int:
        """How many observed points lie after ``after`` (and before ``before``)."""
        ...

    def stream_ids(self) -> list[str]:
        """Every series that has a stream, in order."""
        ...

    def recent_stream_ids(self, limit: int) -> list[str]:
        """Up to ``limit`` series whose streams have observed points, the most recently
        saved first."""
        ...

    def export_stream(self, series_id: str) -> ExportedStream | None:
        """The series' stream as last saved, with all its points (None: no stream)."""
        ...

    def create_key(
        self, name: str, key_digest: str, scopes: Sequence[str], limits: Limits = NO_LIMITS
    ) -> KeyRecord:
        """Store an API key's digest under a new ``name`` with its own ``limits``
        (:class:`InvalidInput` when the name was ever used: names stay reserved after a
        revocation, for the audit)."""
        ...

    def list_keys(self) -> list[KeyRecord]:
        """Every key ever created, by name, revoked ones included."""
        ...

    def revoke_key(self, name: str) -> bool:
        """Revoke the key ``name``; False when no such active key exists."""
        ...

    def export_keys(self) -> list[tuple[KeyRecord, str]]:
        """Every key with its digest, by name (for ``anomaly-api migrate``)."""
        ...

    def import_keys(self, keys: Sequence[tuple[KeyRecord, str]]) -> int:
        """Store copied keys the store lacks (by name) as they are, and revoke those it
        holds that are revoked in ``keys``, in one transaction; return how many keys were
        inserted or revoked. A name held with another digest is left alone (the caller
        checks for such conflicts first)."""
        ...

    def active_keys(self) -> list[ActiveKey]:
        """(digest, name, scopes, limits) of every key not revoked."""
        ...

    def ping(self) -> None:
        """Raise :class:`~anomaly_api.errors.StoreUnavailable` unless the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
