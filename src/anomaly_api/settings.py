"""The one settings object, read from ``ANOMALY_*`` environment variables.

It is built explicitly (``Settings()``) by the CLI or by whoever calls
``create_app(settings)``, never at import time, so tests can give every app its own
database file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration; every field can be set as ``ANOMALY_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ANOMALY_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./data/anomaly.db",
        description="Where models are stored: sqlite:///relative.db or sqlite:////abs/path.db "
        "(one machine), or postgresql://user:password@host:5432/dbname (replicas sharing one "
        "store).",
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=1000,
        description="PostgreSQL connections per worker process at most (predicts served from "
        "the cache use none).",
    )
    database_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long a request waits for a PostgreSQL connection before a 503 (a "
        "server known to be down answers 503 at once).",
    )
    database_statement_timeout_s: float = Field(
        30.0,
        gt=0,
        description="PostgreSQL statements (and waits for locks) longer than this are "
        "cancelled and answered with 503.",
    )
    host: str = Field("127.0.0.1", description="Address `anomaly-api serve` binds to.")
    auth: Literal["required", "off"] | None = Field(
        None,
        description="API keys: 'required' (every route but /healthcheck and the docs needs a "
        "key with the right scope) or 'off'. Unset: off when the service binds a loopback "
        "address, required otherwise; `serve` refuses to bind another address with auth off "
        "unless given --insecure-no-auth.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names (comma-separated; '*' for any) requests may be addressed to, "
        "besides the loopback names (localhost, 127.0.0.1, ::1). Empty: with API keys off "
        "only the loopback names, so a web page cannot reach the service by rebinding its "
        "own name to 127.0.0.1; with keys required, any.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (comma-separated) whose web pages may call the API from a "
        "browser (CORS). Empty: none.",
    )
    port: int = Field(8000, ge=1, le=65535, description="Port `anomaly-api serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Worker processes for `serve`.")
    default_detector: str = Field("zscore", description="Detector used when a fit body names none.")
    model_cache_size: int = Field(
        10_000, ge=1, description="Fitted models kept in memory per worker process (LRU)."
    )
    training_points_cap: int = Field(
        100_000,
        ge=0,
        description="Most recent training points stored with each version, for plots and "
        "re-fits (0 keeps none).",
    )
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Larger request bodies are refused with 413."
    )
    latency_window: int = Field(
        1000,
        ge=1,
        description="Recent requests per worker the healthcheck's latency figures cover.",
    )
    stream_flush_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often each process saves the points its series observed and their "
        "rolling contexts: after kill -9 at most this long of observations is lost (a clean "
        "shutdown saves everything).",
    )
    stream_cache_size: int = Field(
        100_000,
        ge=1,
        description="Series whose live stream (rolling context and unsaved points) a process "
        "holds in memory; the least recently used beyond that are saved and reloaded on "
        "demand.",
    )
    stream_history_points: int = Field(
        10_000,
        ge=0,
        le=10_000_000,
        description="Observed points kept per series (newest first): what retraining and "
        "rebuilding another version's context can use.",
    )
    stream_max_pending: int = Field(
        1_000_000,
        ge=1000,
        description="Observed points a process holds unsaved at most (reached only while the "
        "store is down; observing then answers 503).",
    )
    stream_lease_s: float = Field(
        10.0,
        gt=0,
        description="How long a process that stopped answering keeps its series' streams "
        "before another may take them over.",
    )
    instance_id: str | None = Field(
        None,
        description="A name for this process's hold on series streams, unique among the "
        "processes sharing the store (default: host, pid and a random part).",
    )
    store_busy_timeout_s: float = Field(
        30.0, gt=0, description="How long a write waits for the database lock before a 503."
    )
    plot_max_points: int = Field(
        4000, ge=100, description="Points drawn per plot; longer series are downsampled."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="uvicorn log level."
    )
    access_log: bool = Field(
        False,
        description="Log a line per request. Off by default: at thousands of predicts a "
        "second it costs more CPU than the predicts, and /metrics counts requests anyway.",
    )

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def auth_required(self) -> bool:
        """Whether requests need an API key: ``auth``, or by default whether ``host`` is
        anything but a loopback address."""
        if self.auth is not None:
            return self.auth == "required"
        return not is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) reaches only this machine."""
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
