"""The allowed set of series ids, decided once and enforced at the registry.

An id is 1-256 characters, each a letter or digit of any script, ``_``, ``-``, ``.``,
``:``, ``@`` or ``~`` (so ``sensor_1``, ``eu-west-1:cpu``, ``température.salon`` and
``温度`` are all fine). Slashes, spaces, control characters and other punctuation are
refused with a 422 that says so: ids appear in URLs, logs and file names, and a slash
would make ``/predict/a/b`` ambiguous. An id made of dots only (``.``, ``..``) is
refused too, since path-like tools treat those specially.
"""

from __future__ import annotations

import re

from anomaly_api.errors import InvalidSeriesId

MAX_SERIES_ID_LENGTH = 256
ALLOWED_PUNCTUATION = "_-.:@~"
_ALLOWED = re.compile(r"[\w.:@~-]+")


def check_series_id(series_id: str) -> str:
    """Return ``series_id`` unchanged, or raise :class:`InvalidSeriesId` saying why.

    >>> check_series_id("eu-west-1:cpu")
    'eu-west-1:cpu'
    >>> check_series_id("a/b")
    Traceback (most recent call last):
    ...
    anomaly_api.errors.InvalidSeriesId: series_id 'a/b' contains '/' at position 1; allowed: letters and digits of any script and _-.:@~
    """
    if not series_id:
        raise InvalidSeriesId("series_id must not be empty")
    if len(series_id) > MAX_SERIES_ID_LENGTH:
        raise InvalidSeriesId(
            f"series_id is {len(series_id)} characters long; the limit is {MAX_SERIES_ID_LENGTH}"
        )
    if _ALLOWED.fullmatch(series_id) is None:
        position, character = next(
            (index, char)
            for index, char in enumerate(series_id)
            if _ALLOWED.fullmatch(char) is None
        )
        raise InvalidSeriesId(
            f"series_id {series_id!r} contains {character!r} at position {position}; "
            f"allowed: letters and digits of any script and {ALLOWED_PUNCTUATION}"
        )
    if set(series_id) == {"."}:
        raise InvalidSeriesId("series_id must not consist of dots only")
    return series_id
