"""Storage quotas and retention per API key: how many series and stored training points
a key's fits may hold, and how long its older versions are kept.

Every stored version remembers the key that fitted it (``created_by``; an automatic
retrain, the key of the version it retrains). A key *holds* a series when it fitted any
of its stored versions, and its stored points are the training points kept with those
versions. A fit that would take a key over its series or points quota is refused with
429 before anything is written; the check and the write are one transaction (SQLite's
write lock, a per-key advisory lock on PostgreSQL), so concurrent fits of one key, from
any replica, cannot overshoot it. Retention deletes a key's versions older than its
retention, except each series' latest version, which keeps serving predicts.

A key's own :class:`Limits` (``anomaly-api keys create --max-series ...``) override the
server's defaults (``ANOMALY_QUOTA_SERIES``, ``ANOMALY_QUOTA_POINTS``,
``ANOMALY_RETENTION_DAYS``); 0 means no limit. With API keys off every fit is anonymous
and the defaults apply to all of them together.

No web or database imports: the stores run the check (:func:`check`) in their write
transaction, and :mod:`anomaly_api.registry.retention` runs retention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anomaly_api.errors import InvalidInput, QuotaExceeded

DAY_S = 86_400.0
NO_EXPIRY_RETRY_S = 60
"""Retry-After of a refusal that no retention will lift: the room comes back only when
the key deletes series or versions, which a client may do meanwhile."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's own limits; None: the server's default, 0: no limit."""

    max_series: int | None = None
    max_points: int | None = None
    retention_days: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_series", "max_points", "retention_days"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInput(f"{name} must be 0 (no limit) or more, got {value}", field=name)

    def over(self, defaults: Limits) -> Limits:
        """These limits, each unset one taken from ``defaults``."""
        return Limits(
            self.max_series if self.max_series is not None else defaults.max_series,
            self.max_points if self.max_points is not None else defaults.max_points,
            self.retention_days if self.retention_days is not None else defaults.retention_days,
        )


NO_LIMITS = Limits()
"""A key without limits of its own: the server's defaults apply."""


@dataclass(frozen=True, slots=True)
class Quota:
    """What fits by ``owner`` (a key's name; None: anonymous) may store: 0 is no limit."""

    owner: str | None
    max_series: int = 0
    max_points: int = 0
    retention_s: float = 0.0

    @classmethod
    def of(cls, owner: str | None, limits: Limits, defaults: Limits) -> Quota:
        chosen = limits.over(defaults)
        return cls(
            owner,
            int(chosen.max_series or 0),
            int(chosen.max_points or 0),
            float(chosen.retention_days or 0.0) * DAY_S,
        )

    @property
    def limited(self) -> bool:
        """Whether a fit has anything to check."""
        return bool(self.max_series or self.max_points)


@dataclass(frozen=True, slots=True)
class Usage:
    """What an owner's stored versions hold."""

    series: int
    points: int
    holds_series: bool
    """Whether the owner already holds the series being fitted."""


def check(
    quota: Quota, usage: Usage, new_points: int, oldest_expiring: float | None, now: float
) -> None:
    """Raise :class:`QuotaExceeded` when storing ``new_points`` more (of a series the
    owner may not hold yet) would go over ``quota``. ``oldest_expiring``: when the
    owner's oldest version that retention may delete was created (None: none), which
    says when room comes back."""
    who = "anonymous fits" if quota.owner is None else f"key {quota.owner!r}"
    if quota.max_series and not usage.holds_series and usage.series >= quota.max_series:
        raise QuotaExceeded(
            f"{who} holds {usage.series:,} series, its quota (ANOMALY_QUOTA_SERIES or the "
            f"key's --max-series) is {quota.max_series:,}: delete a series to fit a new one",
            NO_EXPIRY_RETRY_S,
        )
    if quota.max_points and usage.points + new_points > quota.max_points:
        retry = NO_EXPIRY_RETRY_S
        if quota.retention_s and oldest_expiring is not None:
            retry = max(1, math.ceil(oldest_expiring + quota.retention_s - now))
        raise QuotaExceeded(
            f"{who} stores {usage.points:,} training points, and this fit's {new_points:,} "
            f"would go over its quota (ANOMALY_QUOTA_POINTS or the key's --max-points) of "
            f"{quota.max_points:,}: delete older versions or series, or fit fewer points",
            retry,
        )
