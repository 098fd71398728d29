"""Every domain error has a row in the HTTP table."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, MutableMapping
from typing import Any

from fastapi.testclient import TestClient

from anomaly_api import errors
from anomaly_api.api.errors import STATUS_BY_ERROR
from anomaly_api.settings import Settings


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


def test_a_client_that_goes_away_mid_body_is_not_a_server_error(settings: Settings) -> None:
    import asyncio

    from anomaly_api.api.app import create_api

    api = create_api(settings)
    sent: list[MutableMapping[str, Any]] = []
    messages: Iterator[MutableMapping[str, Any]] = iter(
        [
            {"type": "http.request", "body": b'{"timestamps": [1', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> MutableMapping[str, Any]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/fit/s",
        "raw_path": b"/fit/s",
        "query_string": b"",
        "headers": [],
        "app": api,
    }
    with TestClient(api, base_url="http://127.0.0.1"):  # runs the lifespan, so the registry exists
        asyncio.run(api(scope, receive, send))
    assert sent[0]["status"] == 499
