"""Per-API-key rate limiting: a token bucket per key, answered ``429`` + ``Retry-After``.

Each API key owns a bucket of ``burst`` tokens refilled at ``rate`` tokens per second
(Turner 1986, the classic token bucket). A request spends one token; a request that
finds fewer than one token is refused with ``429 Too Many Requests`` and a
``Retry-After`` header giving the whole seconds until a token is back:

    tokens(t) = min(burst, tokens(t0) + rate * (t - t0))
    retry_after = ceil((1 - tokens(t)) / rate)

The limit depends on the key's role (``pos``, ``operator``, ``admin``); by default only
``pos`` keys are limited, at a generous rate that a real checkout never reaches (a
store's integration proxy that fans many terminals through one key included). Set a
role's rate to ``None`` to leave it unlimited, or turn limiting off for benchmarks.

The buckets live in the process, so the check costs no Redis round trip on the
price-read hot path. With ``W`` uvicorn workers behind one socket a key can reach up to
``W * rate`` in the worst case (each worker refills its own bucket); size ``rate`` per
worker. Only keys that resolve to a role get a bucket, so unknown keys (answered 401 by
auth) cannot grow the table.

Example:
    >>> limiter = TokenBucketLimiter({"pos": RateLimit(rate=2.0, burst=2)}, clock=lambda: 0.0)
    >>> [limiter.check("key-1", "pos") for _ in range(3)]
    [0.0, 0.0, 0.5]
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.middleware import new_request_id
from service.problems import PROBLEM_MEDIA_TYPE, problem_bytes

__all__ = [
    "DEFAULT_LIMITS",
    "EXEMPT_PATHS",
    "RateLimit",
    "RateLimitMiddleware",
    "TokenBucketLimiter",
    "limits_from_settings",
]

ASGIApp = Callable[..., Any]


class RateLimit(BaseModel):
    """The token bucket of one role: ``rate`` requests per second, bursts up to ``burst``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    rate: float = Field(gt=0, le=1_000_000)
    """Sustained requests per second per key (per worker process)."""
    burst: int = Field(ge=1, le=10_000_000)
    """Requests a key may send at once after a quiet spell (the bucket's size)."""


DEFAULT_LIMITS: Mapping[str, RateLimit | None] = {
    "pos": RateLimit(rate=500.0, burst=1000),
    "operator": None,
    "admin": None,
}
"""On for ``pos`` keys at 500 req/s (bursts of 1000) per worker; other roles unlimited."""

EXEMPT_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and the metrics scrape are never limited (they carry no API key anyway)."""


class TokenBucketLimiter:
    """Token buckets keyed by API key (stored as a digest, never the key itself).

    Args:
        limits: role -> :class:`RateLimit`, or ``None`` for an unlimited role. Roles
            not listed are unlimited.
        clock: monotonic clock in seconds (injected by tests).
    """

    def __init__(
        self,
        limits: Mapping[str, RateLimit | None] = DEFAULT_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits)
        self._clock = clock
        # digest -> [tokens, last refill time]
        self._buckets: dict[bytes, list[float]] = {}

    @staticmethod
    def _digest(api_key: str) -> bytes:
        return hashlib.blake2b(api_key.encode(), digest_size=16).digest()

    key_digest = _digest
    """The bucket key of an API key (for :meth:`spend`)."""

    def check(self, api_key: str, role: str) -> float:
        """Spend one token of ``api_key``'s bucket.

        Returns:
            ``0.0`` when the request may go ahead, else the seconds until one token is
            back (a positive float; the middleware rounds it up for ``Retry-After``).
        """
        return self.spend(self._digest(api_key), role)

    def spend(self, digest: bytes, role: str) -> float:
        """:meth:`check` for a key already turned into :meth:`key_digest` (the price
        read's fast path remembers it per key instead of hashing every request)."""
        limit = self.limits.get(role)
        if limit is None:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(digest)
        if bucket is None:
            bucket = self._buckets[digest] = [float(limit.burst), now]
        tokens = min(float(limit.burst), bucket[0] + (now - bucket[1]) * limit.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / limit.rate


def limits_from_settings(settings: Any) -> dict[str, RateLimit | None] | None:
    """Read the per-role limits from the service settings.

    Recognised settings (environment ``DROPPRICE_<NAME>``), each optional:
    ``rate_limit_enabled`` (bool, default true), ``rate_limit_pos_per_second`` /
    ``rate_limit_pos_burst``, and the same for ``operator`` and ``admin``. A rate of
    ``0`` or ``None`` leaves that role unlimited.

    Returns:
        role -> limit, or ``None`` when rate limiting is turned off.
    """
    if not getattr(settings, "rate_limit_enabled", True):
        return None
    limits: dict[str, RateLimit | None] = dict(DEFAULT_LIMITS)
    for role in ("pos", "operator", "admin"):
        rate = getattr(settings, f"rate_limit_{role}_per_second", "unset")
        if rate == "unset":
            continue
        if not rate:
            limits[role] = None
            continue
        default_burst = max(1, math.ceil(2 * float(rate)))
        burst = getattr(settings, f"rate_limit_{role}_burst", None) or default_burst
        limits[role] = RateLimit(rate=float(rate), burst=int(burst))
    return limits


class RateLimitMiddleware:
    """Pure ASGI middleware that answers ``429`` + ``Retry-After`` past a key's limit.

    It sits in front of the router (before auth), so it is cheap: a header lookup, one
    role lookup and a dict update. Requests without a key, with a key that resolves to
    no role (auth answers those) and requests to :data:`EXEMPT_PATHS` pass through.

    Args:
        app: the wrapped ASGI app.
        limiter: the buckets.
        resolve_role: API key -> role (a ``str`` or ``StrEnum``), or ``None`` for an
            unknown key (:meth:`service.auth.ApiKeys.role_for`, constant time).
        header: the API-key header name, lower case, as bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: TokenBucketLimiter,
        resolve_role: Callable[[str], Any],
        header: bytes = b"x-api-key",
        exempt_paths: frozenset[str] = EXEMPT_PATHS,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.resolve_role = resolve_role
        self.header = header
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        api_key = None
        for name, value in scope["headers"]:
            if name == self.header:
                api_key = value.decode("latin-1")
                break
        if api_key:
            resolved = self.resolve_role(api_key)
            if resolved is not None:
                role = str(resolved)
                wait = self.limiter.check(api_key, role)
                if wait > 0.0:
                    await self._refuse(scope, send, role, wait)
                    return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: dict[str, Any], send: Any, role: str, wait: float) -> None:
        retry_after = max(1, math.ceil(wait))
        limit = self.limiter.limits[role]
        assert limit is not None
        # The 429 is answered before the request-context layer: give it an id here.
        request_id = new_request_id()
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
                break
        # A problem document like every other error answer (service.problems).
        body = problem_bytes(
            429,
            "rate_limited",
            f"rate limit exceeded for this API key (role {role!r}: "
            f"{limit.rate:g} requests/s, bursts of {limit.burst}); "
            f"retry after {retry_after} s",
            request_id=request_id,
        )
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        headers.append((b"x-request-id", request_id.encode("latin-1")))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
