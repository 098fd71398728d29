"""Domain errors: what went wrong, in words that name the field or the missing thing.

They know nothing about HTTP; ``anomaly_api.api.errors`` maps each class to a status
code in one table (and a test checks that no class is left unmapped)::

    AnomalyApiError
    ├── InvalidInput             bad request data (a field, a value, a parameter)
    │   ├── InvalidSeriesId      a series id outside the allowed set
    │   ├── InvalidParameter     unknown detector or bad detector parameters
    │   ├── PayloadTooLarge      a request body over the configured limit
    │   │   └── BodyTooLarge     a body over what its route takes (a point, a key)
    │   ├── TooManyValues        a request body with more points than the configured limit
    │   └── TooMuchWork          a request estimated to need more CPU than the budget
    ├── NotFound
    │   ├── SeriesNotFound       no model was ever fitted for the series (or it was deleted)
    │   └── VersionNotFound      the series exists, that version does not
    ├── StoreUnavailable         the model store did not answer
    │   └── StreamBusy           another process holds the series' stream and did not
    │                            hand it over in time
    ├── Overloaded               every slot for heavy work is taken and the queue is full
    └── QuotaExceeded            a fit would take its key over its series or points quota
"""

from __future__ import annotations


class AnomalyApiError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def public(self) -> str:
        """What clients are told: the message, unless it holds the server's internals."""
        return self.message


class InvalidInput(AnomalyApiError):
    """The request data cannot be used; ``field`` names the offending part."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidSeriesId(InvalidInput):
    """A series id that is empty, too long or has characters outside the allowed set."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="series_id")


class InvalidParameter(InvalidInput):
    """An unknown detector name, or a detector parameter that is unknown or out of range."""


class NotFound(AnomalyApiError):
    """Something the request refers to does not exist."""


class SeriesNotFound(NotFound):
    """No model exists for the series."""

    def __init__(self, series_id: str) -> None:
        super().__init__(
            f"series {series_id!r} has no trained model; POST /fit/{{series_id}} first"
        )
        self.series_id = series_id


class VersionNotFound(NotFound):
    """The series exists but not the requested version."""

    def __init__(self, series_id: str, version: int, latest: int | None) -> None:
        hint = f" (latest is {latest})" if latest is not None else ""
        super().__init__(f"series {series_id!r} has no version {version}{hint}")
        self.series_id = series_id
        self.version = version


class StoreUnavailable(AnomalyApiError):
    """The model store could not be reached or did not answer in time.

    The message names the database file or server and quotes the driver (for the
    server log); clients are told only :attr:`public`: the message without the place
    (`` at <where>``) and without what follows its first colon.

    >>> StoreUnavailable("PostgreSQL at db.internal:5432/models is unreachable: timeout").public
    'the model store is unavailable: PostgreSQL is unreachable (the server log says more)'
    """

    @property
    def public(self) -> str:
        import re

        kind = re.sub(r" at \S+", "", self.message, count=1).split(": ", 1)[0]
        return f"the model store is unavailable: {kind} (the server log says more)"


class StreamBusy(StoreUnavailable):
    """Another process holds the series' live stream and did not release it in time
    (it may have just died: its lease runs out within ``ANOMALY_STREAM_LEASE_S``)."""

    def __init__(self, series_id: str) -> None:
        super().__init__(
            f"series {series_id!r} is being served by another process that has not handed "
            "it over yet; retry shortly"
        )
        self.series_id = series_id

    @property
    def public(self) -> str:
        return self.message


class PayloadTooLarge(InvalidInput):
    """The request body is larger than ``ANOMALY_MAX_BODY_BYTES``."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body is larger than the limit of {limit} bytes (ANOMALY_MAX_BODY_BYTES)",
            field="body",
        )
        self.limit = limit


class BodyTooLarge(PayloadTooLarge):
    """A body larger than its route takes: one point or one key is a small object."""

    def __init__(self, size: int, limit: int) -> None:
        InvalidInput.__init__(
            self,
            f"request body is {size:,} bytes; this route takes one small JSON object of at "
            f"most {limit // 1024} KiB",
            field="body",
        )
        self.limit = limit


class TooManyValues(InvalidInput):
    """A request body holding more values than ``ANOMALY_MAX_POINTS_PER_REQUEST`` allows,
    refused before it is parsed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body holds more than {limit:,} points (ANOMALY_MAX_POINTS_PER_REQUEST): "
            "send them in several requests",
            field="body",
        )
        self.limit = limit


class TooMuchWork(InvalidInput):
    """A request whose estimated CPU time is over ``ANOMALY_MAX_REQUEST_WORK_S``, refused
    before any of the work starts."""

    def __init__(self, what: str, estimate_s: float, limit_s: float, field: str) -> None:
        super().__init__(
            f"{what} needs an estimated {estimate_s:,.1f} s of CPU, over the limit of "
            f"{limit_s:g} s per request (ANOMALY_MAX_REQUEST_WORK_S): send fewer points, "
            "or choose cheaper parameters or detector",
            field=field,
        )
        self.estimate_s = estimate_s
        self.limit_s = limit_s


class Overloaded(AnomalyApiError):
    """Every slot for heavy work (fits, detects, batches, plots) is taken and the queue
    in front of them is full, or a request waited too long in it."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExceeded(AnomalyApiError):
    """A fit would take its API key (or the anonymous clients) over the quota of series
    or stored training points (:mod:`anomaly_api.quotas`); nothing was written."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
