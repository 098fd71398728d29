"""The one settings object, read from ``ANOMALY_*`` environment variables.

It is built explicitly (``Settings()``) by the CLI or by whoever calls
``create_app(settings)``, never at import time, so tests can give every app its own
database file.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from anomaly_api.quotas import Limits


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
    model_cache_bytes: int = Field(
        1 << 30,
        ge=1 << 20,
        description="Estimated bytes of fitted models kept in memory per worker process: "
        "the least recently used beyond it are dropped, as beyond ANOMALY_MODEL_CACHE_SIZE "
        "(a model of four weeks of 5-minute points with a weekly profile holds ~20 KiB, a "
        "pattern model ~250 KiB). The latest-model and version maps each keep to it.",
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
    history_days: float = Field(
        14.0,
        ge=0,
        description="Observed points (GET /series/{id}/points) older than this many days "
        "before their series' newest are deleted, a save's chunk at a time; 0: kept until "
        "ANOMALY_STREAM_HISTORY_POINTS pushes them out.",
    )
    metrics_series: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Series whose stream counters (last score, anomalies of the last hour "
        "and day, incidents of the day) GET /metrics reports with a series_id label: the "
        "most recently active ones; 0: none.",
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
    max_points_per_request: int = Field(
        800_000,
        ge=1000,
        description="Points one request body may hold (counted from its commas before it "
        "is parsed: parsing costs memory in proportion; a /detect of 1,000,000 points "
        "peaked at 303 MiB); more is refused with 413.",
    )
    max_request_work_s: float = Field(
        30.0,
        gt=0,
        description="Estimated CPU seconds one request may need (points times its "
        "detector's cost per point); a fit, detect or batch over it is refused with 413 "
        "before any work starts, a plot draws the latest training points that fit.",
    )
    heavy_jobs: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Heavy requests (fit, detect, batches, plots, bodies over 1 MiB) one "
        "worker process runs at once; the others wait in a queue. Default: the CPU cores "
        "divided among the workers, at least 1.",
    )
    heavy_queue: int = Field(
        64,
        ge=0,
        description="Heavy requests that may wait for a slot per worker process; beyond "
        "that they are answered 503 with Retry-After at once.",
    )
    heavy_wait_s: float = Field(
        30.0,
        gt=0,
        description="How long a heavy request waits in the queue before it is answered 503 "
        "with Retry-After.",
    )
    quota_fits_per_minute: int = Field(
        0,
        ge=0,
        description="Fits per minute each API key (each client address with keys off) may "
        "make per worker process, in bursts of up to a minute's worth; beyond it 429 with "
        "Retry-After. 0: no limit.",
    )
    quota_series: int = Field(
        0,
        ge=0,
        description="Series each API key may hold (fitted a stored version of), unless the "
        "key has its own `--max-series`; a fit of one more is answered 429. With keys off, "
        "all fits together. 0: no limit.",
    )
    quota_points: int = Field(
        0,
        ge=0,
        description="Training points each API key's stored versions may hold, unless the "
        "key has its own `--max-points`; a fit beyond it is answered 429. 0: no limit.",
    )
    retention_days: float = Field(
        0.0,
        ge=0,
        description="Versions older than this many days are deleted, except each series' "
        "latest, unless the key has its own `--retention-days`. 0: kept until deleted.",
    )
    audit_log: str | None = Field(
        None,
        description="File the audit log (a JSON line per fit, delete and key change, with "
        "the key's name) is appended to; unset: standard error, with the server log.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A request's line and headers must arrive within this long of their "
        "first byte (or of the connection opening), or the client gets 408 and the "
        "connection is closed (slow clients holding connections).",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest pause between two parts of a request body before 408 and "
        "the connection is closed.",
    )
    max_connections: int = Field(
        2000,
        ge=10,
        description="Open connections per worker process at most; requests beyond it are "
        "answered 503 (`serve` also raises the process's open-file limit to fit it).",
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
    def heavy_slots(self) -> int:
        """``heavy_jobs``, or the CPU cores shared among the workers."""
        if self.heavy_jobs is not None:
            return self.heavy_jobs
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return max(1, (cores or os.cpu_count() or 1) // self.workers)

    @property
    def default_limits(self) -> Limits:
        """The quotas and retention of every key without its own (and of anonymous fits)."""
        return Limits(self.quota_series, self.quota_points, self.retention_days)

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
