"""The token bucket behind per-key rate limiting (service/ratelimit.py), in-process."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ratelimit import (
    DEFAULT_LIMITS,
    RateLimit,
    RateLimitMiddleware,
    TokenBucketLimiter,
    limits_from_settings,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_then_refilled() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter({"pos": RateLimit(rate=10.0, burst=5)}, clock=clock)
    assert [limiter.check("k", "pos") for _ in range(5)] == [0.0] * 5
    wait = limiter.check("k", "pos")
    assert wait == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.check("k", "pos") == 0.0
    assert limiter.check("k", "pos") > 0.0
    clock.now += 100.0  # the bucket refills to burst, not beyond
    assert [limiter.check("k", "pos") for _ in range(6)].count(0.0) == 5


def test_keys_have_separate_buckets_and_unlimited_roles_pass() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter({"pos": RateLimit(rate=1.0, burst=1), "admin": None}, clock=clock)
    assert limiter.check("a", "pos") == 0.0
    assert limiter.check("a", "pos") > 0.0
    assert limiter.check("b", "pos") == 0.0
    assert all(limiter.check("c", "admin") == 0.0 for _ in range(1000))
    assert all(limiter.check("c", "unknown-role") == 0.0 for _ in range(10))


def test_raw_keys_are_not_kept_in_memory() -> None:
    limiter = TokenBucketLimiter({"pos": RateLimit(rate=1.0, burst=1)})
    limiter.check("sk_live_secret_value", "pos")
    assert all(b"sk_live" not in d for d in limiter._buckets)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 100.0),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=300),
)
def test_never_admits_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Over any arrival pattern, admitted <= burst + rate * elapsed (token-bucket bound)."""
    clock = Clock()
    start = clock.now
    limiter = TokenBucketLimiter({"pos": RateLimit(rate=rate, burst=burst)}, clock=clock)
    admitted = 0
    for gap in gaps:
        clock.now += gap
        wait = limiter.check("k", "pos")
        if wait == 0.0:
            admitted += 1
        else:
            assert 0.0 < wait <= 1.0 / rate + 1e-9
        assert admitted <= burst + rate * (clock.now - start) + 1e-6


def test_limits_from_settings() -> None:
    class S:
        rate_limit_enabled = True
        rate_limit_pos_per_second = 20.0
        rate_limit_pos_burst = None
        rate_limit_operator_per_second = 5
        rate_limit_operator_burst = 7
        rate_limit_admin_per_second = 0

    limits = limits_from_settings(S())
    assert limits == {
        "pos": RateLimit(rate=20.0, burst=40),
        "operator": RateLimit(rate=5.0, burst=7),
        "admin": None,
    }

    class Off:
        rate_limit_enabled = False

    assert limits_from_settings(Off()) is None
    assert limits_from_settings(object()) == dict(DEFAULT_LIMITS)
    assert DEFAULT_LIMITS["pos"] is not None  # on by default for pos keys


async def _ok_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_middleware_answers_429_with_retry_after() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter({"pos": RateLimit(rate=0.25, burst=3)}, clock=clock)
    roles = {"pos-key": "pos", "admin-key": "admin"}
    app = RateLimitMiddleware(_ok_app, limiter=limiter, resolve_role=roles.get)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            out = [
                await client.get(
                    "/v1/prices/A", headers={"X-API-Key": "pos-key", "X-Request-ID": "r-1"}
                )
                for _ in range(4)
            ]
            out += [
                await client.get("/v1/prices/A", headers={"X-API-Key": "nope"}) for _ in range(5)
            ]
            out += [await client.get("/healthz", headers={"X-API-Key": "pos-key"})]
            out += [
                await client.get("/v1/prices/A", headers={"X-API-Key": "admin-key"})
                for _ in range(5)
            ]
            return out

    responses = asyncio.run(run())
    assert [r.status_code for r in responses[:4]] == [200, 200, 200, 429]
    refused = responses[3]
    assert refused.headers["retry-after"] == str(math.ceil(1 / 0.25))
    assert refused.headers["x-request-id"] == "r-1"
    body = refused.json()
    assert body["code"] == "rate_limited" and body["request_id"] == "r-1"
    assert "pos" in body["detail"]
    # unknown keys go on to auth; probes and unlimited roles are never limited
    assert all(r.status_code == 200 for r in responses[4:])
