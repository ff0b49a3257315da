"""Bearer tokens: 256-bit random secrets, stored as their SHA-256. A team token sees only its
team's jobs; the admin token (no team) manages queues, tokens and nodes. Tokens may expire and
be revoked; the cache below bounds how long a revoked token keeps working."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

TOKEN_PREFIX = "ctx_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a team, or the admin (team None)."""

    team: str | None
    admin: bool
    token_id: int


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison, so that response timing says nothing about a guessed hash."""
    return hmac.compare_digest(a.encode(), b.encode())


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenCache:
    """Principals of recently seen tokens, each kept at most `ttl_s` (one second by default):
    a token revoked through this service is dropped at once, and one revoked by anything else
    (another service on the same store, a hand edit) stops working within `ttl_s`. Expiry is
    checked on every use. Saves a store query per request under load."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[Principal, float | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now_mono: float, now_s: float) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        who, expires_at, cached_mono = hit
        if now_mono - cached_mono >= self.ttl_s or (expires_at is not None and now_s >= expires_at):
            with self._lock:
                self._entries.pop(key, None)
            return None
        return who

    def put(self, key: str, who: Principal, expires_at: float | None, now_mono: float) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) > 100_000:  # bounded: a flood of distinct tokens
                self._entries.clear()
            self._entries[key] = (who, expires_at, now_mono)

    def forget_token(self, token_id: int) -> None:
        with self._lock:
            for key in [k for k, v in self._entries.items() if v[0].token_id == token_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
