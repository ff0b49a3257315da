"""Bearer-token helpers of the control plane (control/auth.py): parsing, hashing, comparison."""

from __future__ import annotations

import hashlib

import pytest

from cortex.control.auth import TOKEN_PREFIX, hash_token, new_token, parse_bearer, same_hash


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),  # the scheme is case-insensitive (RFC 7235)
        ("BEARER  abc  ", "abc"),  # surrounding blanks are not part of the token
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Basic abc", None),
        ("Bearerabc", None),
    ],
)
def test_parse_bearer(header: str | None, token: str | None) -> None:
    assert parse_bearer(header) == token


def test_hash_token_is_the_hex_sha256_of_the_secret() -> None:
    # sha256("ctx_x") computed independently of the module.
    assert hash_token("ctx_x") == hashlib.sha256(b"ctx_x").hexdigest()
    assert len(hash_token("a")) == 64 and hash_token("a") != hash_token("b")


def test_new_tokens_are_prefixed_distinct_and_long() -> None:
    a, b = new_token(), new_token()
    assert a.startswith(TOKEN_PREFIX) and b.startswith(TOKEN_PREFIX) and a != b
    # 32 random bytes in URL-safe base64: 43 characters after the prefix.
    assert len(a) == len(TOKEN_PREFIX) + 43


def test_same_hash_compares_exactly() -> None:
    h = hash_token("s")
    assert same_hash(h, h)
    assert not same_hash(h, hash_token("t"))
    assert not same_hash(h, h[:-1])
