"""The principal cache of control/auth.py: how long a cached token keeps working (ttl, expiry),
that a revoked token is dropped at once, and that the cache stays bounded. Times are given by
hand (monotonic and wall seconds), so every boundary is exact."""

from __future__ import annotations

from cortex.control.auth import Principal, TokenCache

ALICE = Principal(team="a", admin=False, token_id=1)
BOB = Principal(team="b", admin=False, token_id=2)


def test_a_cached_token_is_found_until_ttl_has_passed() -> None:
    cache = TokenCache(ttl_s=1.0)
    cache.put("ka", ALICE, None, now_mono=10.0)
    # 10.5 - 10.0 = 0.5 s < 1 s: still cached (and 10.5 + 10.0 would not be < 1: a sum is wrong).
    assert cache.get("ka", now_mono=10.5, now_s=0.0) == ALICE
    # 10.999 - 10.0 = 0.999 s < 1 s: still cached.
    assert cache.get("ka", now_mono=10.999, now_s=0.0) == ALICE
    # Another key is not this one.
    assert cache.get("kb", now_mono=10.5, now_s=0.0) is None


def test_the_entry_is_stale_at_exactly_ttl_even_without_expiry() -> None:
    cache = TokenCache(ttl_s=1.0)
    cache.put("ka", ALICE, None, now_mono=10.0)
    # 11.0 - 10.0 = 1.0 s >= ttl 1.0: stale, though the token never expires (expires_at None).
    assert cache.get("ka", now_mono=11.0, now_s=0.0) is None
    # The stale entry is dropped, not kept forever (the cache holds at most ttl's worth).
    assert "ka" not in cache._entries
    # Once dropped, it stays a miss even back inside the window.
    assert cache.get("ka", now_mono=10.5, now_s=0.0) is None


def test_an_expired_token_misses_at_its_expiry_second() -> None:
    cache = TokenCache(ttl_s=60.0)
    cache.put("ka", ALICE, 100.0, now_mono=0.0)
    # Inside ttl (0.5 < 60); wall time 99.5 < expiry 100: a hit.
    assert cache.get("ka", now_mono=0.5, now_s=99.5) == ALICE
    # Wall time 100 >= expiry 100: expired at that very second, though ttl has not passed.
    assert cache.get("ka", now_mono=0.6, now_s=100.0) is None
    assert "ka" not in cache._entries


def test_a_ttl_under_one_second_still_caches() -> None:
    cache = TokenCache(ttl_s=0.5)
    cache.put("ka", ALICE, None, now_mono=3.0)
    # 3.25 - 3.0 = 0.25 s < 0.5 s.
    assert cache.get("ka", now_mono=3.25, now_s=0.0) == ALICE


def test_ttl_zero_disables_the_cache() -> None:
    cache = TokenCache(ttl_s=0.0)
    cache.put("ka", ALICE, None, now_mono=3.0)
    # Nothing is stored at all (a disabled cache costs no memory), checked before a lookup,
    # which would drop a stale entry anyway.
    assert cache._entries == {}
    assert cache.get("ka", now_mono=3.0, now_s=0.0) is None


def test_forget_token_drops_that_token_only() -> None:
    cache = TokenCache(ttl_s=60.0)
    cache.put("ka", ALICE, None, now_mono=0.0)
    cache.put("ka2", ALICE, None, now_mono=0.0)  # the same token seen under two keys
    cache.put("kb", BOB, None, now_mono=0.0)
    cache.forget_token(ALICE.token_id)
    assert cache.get("ka", now_mono=1.0, now_s=0.0) is None
    assert cache.get("ka2", now_mono=1.0, now_s=0.0) is None
    assert cache.get("kb", now_mono=1.0, now_s=0.0) == BOB


def test_a_flood_of_distinct_tokens_clears_the_cache_past_100000_entries() -> None:
    cache = TokenCache(ttl_s=60.0)
    cache.put("first", ALICE, None, now_mono=0.0)
    for i in range(99_999):
        cache.put(f"k{i}", BOB, None, now_mono=0.0)
    # 1 + 99,999 = 100,000 entries: not over the bound, so the next put keeps them all.
    cache.put("k100000", BOB, None, now_mono=0.0)
    assert cache.get("first", now_mono=1.0, now_s=0.0) == ALICE
    # Now 100,001 > 100,000: this put clears the cache first, then stores only itself.
    cache.put("last", BOB, None, now_mono=0.0)
    assert cache.get("first", now_mono=1.0, now_s=0.0) is None
    assert cache.get("last", now_mono=1.0, now_s=0.0) == BOB


class _RacingLock:
    """A lock whose acquisition first lets "another thread" drop the key: the interleaving in
    which two requests see the same stale entry and the other one removes it first."""

    def __init__(self, cache: TokenCache, key: str) -> None:
        self.cache, self.key = cache, key

    def __enter__(self) -> None:
        self.cache._entries.pop(self.key, None)

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_stale_entry_already_dropped_by_another_request_is_not_an_error() -> None:
    cache = TokenCache(ttl_s=1.0)
    cache.put("ka", ALICE, None, now_mono=0.0)
    cache._lock = _RacingLock(cache, "ka")  # type: ignore[assignment]
    # 5 - 0 >= 1: stale; the entry is gone by the time this request holds the lock.
    assert cache.get("ka", now_mono=5.0, now_s=0.0) is None
