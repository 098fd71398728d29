"""The history of what the service scored: each point a series observed on the live path,
with the version that scored it and the answer (score, band, anomaly flag), read back for
a time range and page by page.

Points are kept as the streams save them (:mod:`anomaly_api.registry.streams`): every
``ANOMALY_STREAM_FLUSH_S`` to the store, the newest ``ANOMALY_STREAM_HISTORY_POINTS`` per
series. The points this process observed and has not saved yet are included, so a client
reads back at once what it was just answered; points another worker or replica holds
unsaved appear within a flush interval.
"""

from __future__ import annotations

from anomaly_api.registry.streams import Streams
from anomaly_api.storage.base import ModelStore, StreamPoint
from anomaly_api.storage.chunks import incident_of, points_between


def scored_points(
    store: ModelStore,
    streams: Streams,
    series_id: str,
    after: int,
    before: int,
    limit: int,
    anomalies_only: bool = False,
) -> list[StreamPoint]:
    """The first ``limit`` points observed strictly between ``after`` and ``before``,
    oldest first (only the anomalous ones with ``anomalies_only``)."""
    unsaved: list[bytes] = []
    entry = streams.cached(series_id)
    if entry is not None:
        with entry.lock:  # taken before the store is read: a save in between is in both
            if not entry.released:
                unsaved = list(entry.pending)
    found = store.scored_points(series_id, after, before, limit, anomalies_only)
    if len(found) < limit and unsaved:
        newest_saved = found[-1][0] if found else after
        extra = points_between(b"".join(unsaved), max(after, newest_saved), before, anomalies_only)
        found.extend(extra[: limit - len(found)])
    return found


def active_series(store: ModelStore, streams: Streams, limit: int) -> list[str]:
    """Up to ``limit`` series that observed points, the most recently active first: the
    streams this process used last, then those the store saved last (other processes')."""
    if limit <= 0:
        return []
    chosen: dict[str, None] = {}
    try:
        live = list(streams.live_entries().items())
    except RuntimeError:  # changed by another thread meanwhile: the store's list will do
        live = []
    for series_id, entry in reversed(live):
        if len(chosen) >= limit:
            return list(chosen)
        if entry.observed > 0:
            chosen[series_id] = None
    for series_id in store.recent_stream_ids(limit):
        if len(chosen) >= limit:
            break
        chosen.setdefault(series_id)
    return list(chosen)


HOUR_S = 3_600
DAY_S = 86_400


def recent_counts(
    store: ModelStore, streams: Streams, series_id: str, last_timestamp: int | None
) -> dict[str, object]:
    """The newest point's score, and the anomalies in the hour and the day up to it (the
    series' own clock: a replay of old data counts as it would have live)."""
    if last_timestamp is None:
        return {
            "last_score": None,
            "anomalies_last_hour": 0,
            "anomalies_last_day": 0,
            "incidents_last_day": 0,
        }
    newest = scored_points(store, streams, series_id, last_timestamp - 1, last_timestamp + 1, 1)
    day = scored_points(
        store, streams, series_id, last_timestamp - DAY_S, last_timestamp + 1, 10**7, True
    )
    hour = sum(1 for point in day if point[0] > last_timestamp - HOUR_S)
    return {
        "last_score": newest[0][3] if newest else None,
        "anomalies_last_hour": hour,
        "anomalies_last_day": len(day),
        "incidents_last_day": sum(1 for point in day if incident_of(point[4]) == "new"),
    }
