"""The one error of the Azure surface: Azure's code and message."""

from __future__ import annotations

from anomaly_api.errors import AnomalyApiError

CODES = (
    "InvalidCustomInterval",
    "BadArgument",
    "InvalidGranularity",
    "InvalidPeriod",
    "InvalidModelArgument",
    "InvalidSeries",
    "InvalidJsonFormat",
    "RequiredGranularity",
    "RequiredSeries",
    "InvalidImputeMode",
    "InvalidImputeFixedValue",
)
"""``AnomalyDetectorErrorCodes`` of API v1.1 (v1.0's are a subset)."""


class AzureRequestError(AnomalyApiError):
    """A request Azure Anomaly Detector would have refused: answered 400 with
    ``{"code": code, "message": message}`` and ``x-ms-error-code: code``."""

    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
