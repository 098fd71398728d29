"""API keys: scopes, generation, hashing, and the keyring every request is checked against.

A key is ``adk_`` and 43 URL-safe characters: 256 random bits (``secrets``). The store
keeps only its SHA-256 digest (a key is random, so an unsalted fast hash is enough: there
is nothing to guess a dictionary of), its name and its scopes, so replicas sharing a store
share the keys. The :class:`Keyring` holds the active digests in memory and reloads them
from the store every :data:`REFRESH_S`: a revoked key stops working on every replica
within about that time, and checking a key costs a hash and a dictionary lookup.

No web or database imports: the HTTP layer is :mod:`anomaly_api.api.asgi.auth`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from anomaly_api.errors import InvalidInput
from anomaly_api.quotas import NO_LIMITS, Limits

SCOPES = ("read", "predict", "write", "admin")
"""``read``: listings, plots, versions, metrics, detectors. ``predict``: every scoring
route. ``write``: fit and delete. ``admin``: managing keys."""
KEY_PREFIX = "adk_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REFRESH_S = 0.5
"""How often the keyring reloads the keys from the store."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key, without the key itself."""

    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    limits: Limits = NO_LIMITS


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from: the key's name, scopes and own limits."""

    name: str
    scopes: frozenset[str]
    limits: Limits = NO_LIMITS


def new_key() -> str:
    """A fresh random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str | bytes) -> str:
    """The hex SHA-256 digest stored for ``key``."""
    data = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return hashlib.sha256(data).hexdigest()


CLIENT_KEY_VARIABLE = "ANOMALY_API_KEY"
"""The environment variable this package's client tools (``anomaly-api bench``,
``benchmarks/nab_http.py``) read the key they send from."""


def client_headers() -> dict[str, str]:
    """``Authorization: Bearer KEY`` when :data:`CLIENT_KEY_VARIABLE` holds a key."""
    key = os.environ.get(CLIENT_KEY_VARIABLE, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from ``"read,predict"`` (or a list), checked, in :data:`SCOPES` order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {', '.join(unknown)}; valid: {', '.join(SCOPES)}", field="scopes"
        )
    if not wanted:
        raise InvalidInput(f"a key needs at least one scope of {', '.join(SCOPES)}", field="scopes")
    return tuple(scope for scope in SCOPES if scope in wanted)


def check_name(name: str) -> str:
    """A key name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            "a key name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            field="name",
        )
    return name


class Keyring:
    """The active keys, by digest, reloaded from ``load`` every :data:`REFRESH_S` by a
    background thread (:meth:`start`); :meth:`check` is what a request calls."""

    def __init__(self) -> None:
        self._keys: dict[str, Principal] = {}
        self._load: Callable[[], list[tuple[str, str, tuple[str, ...], Limits]]] | None = None
        self._loaded_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def loaded(self) -> bool:
        """Whether the keys were read from the store recently enough to be trusted."""
        loaded_at = self._loaded_at
        return loaded_at is not None and time.monotonic() - loaded_at < 30 * REFRESH_S + 5

    def start(self, load: Callable[[], list[tuple[str, str, tuple[str, ...], Limits]]]) -> None:
        """Load the keys now (a store that is down leaves the keyring unloaded: every key
        is refused with 503 until it answers) and keep reloading them."""
        self._load = load
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="keyring", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def refresh(self) -> None:
        if self._load is None:
            return
        try:
            rows = self._load()
        except Exception:
            return
        self._keys = {
            row_digest: Principal(name, frozenset(scopes), limits)
            for row_digest, name, scopes, limits in rows
        }
        self._loaded_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.refresh()

    def check(self, key: bytes) -> Principal | None:
        """The key's principal, or None for an unknown or revoked key.

        What is compared is the SHA-256 digest of what was sent, never the key itself: how
        long a lookup takes depends on digests the sender cannot steer, so timing tells
        nothing about how close a guess was (the reason for a constant-time comparison)."""
        return self._keys.get(digest(key))
