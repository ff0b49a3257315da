"""Bearer tokens: 256-bit random secrets, stored as their SHA-256. A team token sees only its
team's jobs; the admin token (no team) manages queues, tokens and nodes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
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
