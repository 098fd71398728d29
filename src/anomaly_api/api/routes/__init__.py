"""One router per resource.

Importing :mod:`anomaly_api.api.paths` here registers the ``{series_id:series}`` path
convertor before any router declares a path that uses it.
"""

import anomaly_api.api.paths  # noqa: F401
