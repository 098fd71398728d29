"""Granularity, the grid it implies, and the gaps in it.

Azure's ``granularity`` and ``customInterval`` say how far apart the points are meant to
be (``minutely`` with ``customInterval: 5``: every five minutes). Every timestamp must lie
on that grid counted from the first one; a point off it is Azure's ``InvalidSeries``
("The 'timestamp' at index i is invalid ..."). Grid slots without a point are gaps: they
are filled as ``imputeMode`` says before the model sees the series, and the answer still
has one entry per point sent. Months and years are calendar steps (every point on the
same day of the month and time of day as the first); the other granularities fixed ones.
"""

from __future__ import annotations

import numpy as np

from anomaly_api.azure.errors import AzureRequestError
from anomaly_api.detectors.series import FloatArray, IntArray

GRANULARITIES = (
    "daily",
    "minutely",
    "hourly",
    "weekly",
    "monthly",
    "yearly",
    "secondly",
    "microsecond",
    "none",
)
"""In the order Azure's message lists them."""
_STEP_US = {
    "weekly": 7 * 86_400 * 10**6,
    "daily": 86_400 * 10**6,
    "hourly": 3_600 * 10**6,
    "minutely": 60 * 10**6,
    "secondly": 10**6,
    "microsecond": 1,
}
_MONTHS = {"monthly": 1, "yearly": 12}
IMPUTE_MODES = ("auto", "previous", "linear", "fixed", "zero", "notFill")
MAX_SLOTS = 4 * 8640
"""The most grid slots a series may span, gaps included (Azure takes 8640 points at most)."""


def grid_slots(stamps_us: IntArray, granularity: str, interval: int) -> IntArray:
    """Each point's slot on the grid (the first point's is 0), or ``InvalidSeries`` naming
    the first point off it. ``stamps_us``: ascending Unix microseconds."""
    if granularity in _MONTHS:
        moments = stamps_us.astype("datetime64[us]")
        months = moments.astype("datetime64[M]")
        offsets = (moments - months.astype("datetime64[us]")).astype(np.int64)
        counted = (months - months[0]).astype(np.int64)
        step = _MONTHS[granularity] * interval
        off = (offsets != offsets[0]) | (counted % step != 0)
        slots = counted // step
    else:
        step = _STEP_US[granularity] * interval
        elapsed = stamps_us - stamps_us[0]
        off = elapsed % step != 0
        slots = elapsed // step
    if np.any(off):
        index = int(np.argmax(off))
        raise AzureRequestError(
            "InvalidSeries",
            f"The 'timestamp' at index {index} is invalid in {granularity} granularity "
            f"with {interval} gran as interval.",
        )
    if slots[-1] >= MAX_SLOTS:
        raise AzureRequestError(
            "InvalidSeries",
            f"The 'series' field spans {int(slots[-1]) + 1} {granularity} slots with its "
            f"gaps; at most {MAX_SLOTS} are supported.",
        )
    return np.asarray(slots, dtype=np.int64)


def fill(
    values: FloatArray, slots: IntArray, mode: str, fixed: float | None
) -> tuple[FloatArray, IntArray]:
    """The series on its grid with the gaps filled (``notFill``: as sent), and where each
    point sent lies in it. ``auto`` fills linearly."""
    if mode == "notFill" or slots.size == 0 or int(slots[-1]) + 1 == slots.size:
        return values, np.arange(values.size, dtype=np.int64)
    length = int(slots[-1]) + 1
    if mode in ("auto", "linear"):
        filled = np.interp(np.arange(length), slots, values)
    else:
        filled = np.empty(length)
        if mode == "previous":
            known = np.zeros(length, dtype=np.int64)
            known[slots] = slots
            filled = values[np.searchsorted(slots, np.maximum.accumulate(known))]
        else:
            filled[:] = 0.0 if mode == "zero" else float(fixed or 0.0)
    filled[slots] = values
    return filled, slots
