"""The ``{series_id:series}`` path convertor.

Starlette's ``path`` convertor is the regex ``.*``, which stops at a newline, so an id
such as ``a%0Ab`` would match no route and get a bare "Not Found". This one matches
any text, slashes and control characters included, so every odd id reaches
:func:`~anomaly_api.series_ids.check_series_id` and gets a 422 that says what is wrong.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class SeriesIdConvertor(Convertor[str]):
    """Any text, as is; the registry decides what is a valid id."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("series", SeriesIdConvertor())
