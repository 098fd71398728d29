"""Every domain error has a row in the HTTP table."""

from __future__ import annotations

import inspect

from anomaly_api import errors
from anomaly_api.api.errors import STATUS_BY_ERROR


def test_every_domain_error_is_mapped() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.AnomalyApiError)
    }
    assert classes - set(STATUS_BY_ERROR) == set()


def test_client_errors_are_4xx() -> None:
    for cls, status in STATUS_BY_ERROR.items():
        if issubclass(cls, errors.InvalidInput | errors.NotFound):
            assert 400 <= status < 500
