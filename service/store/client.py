"""Connecting to Redis (one node or a cluster) and turning its failures into domain errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.exceptions import StoreUnavailable

__all__ = [
    "ClusterClient",
    "RedisClient",
    "connect",
    "connect_async",
    "is_cluster",
    "subscribe",
    "unavailable_as_domain_error",
]

RedisClient: TypeAlias = "redis.Redis | redis.RedisCluster"

_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
    redis.exceptions.MasterDownError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
)


def connect(url: str, *, timeout: float = 0.25, cluster: bool | None = None) -> Any:
    """Open a redis-py client for ``url``.

    Args:
        url: ``redis://host:port/db`` for one server, ``redis+cluster://host:port`` for
            a Redis Cluster (any node; the rest are discovered). ``rediss://`` and
            ``rediss+cluster://`` use TLS.
        timeout: socket connect and read timeout in seconds: the time budget of one
            Redis call (the service's ``DROPPRICE_REDIS_TIMEOUT_MS``).
        cluster: force cluster mode for a plain ``redis://`` URL (``--cluster``).

    Returns:
        ``redis.Redis`` or ``redis.RedisCluster`` (typed ``Any`` because the two
        share no base class). A connection error (a pooled socket Redis closed) is
        retried once, without backoff; a timeout is not retried, so one call waits at
        most ``timeout`` for a Redis that does not answer.

    Raises:
        ValueError: the URL scheme is not one of the above.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in {"redis", "rediss", "redis+cluster", "rediss+cluster"}:
        raise ValueError(
            f"Redis URL must start with redis://, rediss://, redis+cluster:// or "
            f"rediss+cluster://, got {url!r}"
        )
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # A broken pooled connection (Redis restarted) is retried once on a fresh one,
        # which fails at once while Redis is down; a timeout is never retried, so a hung
        # Redis costs one ``timeout``, not two: the budget bounds the time to a 503.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "health_check_interval": 0,
    }
    if scheme.endswith("+cluster") or cluster:
        base = scheme.removesuffix("+cluster")
        return ClusterClient.from_url(f"{base}://{rest}", **options)
    return redis.Redis.from_url(url, **options)


def connect_async(url: str, *, timeout: float = 0.25) -> Any:
    """An asyncio redis-py client for a single-node ``url``, with :func:`connect`'s time
    budget and retry policy (a connection error retried once, a timeout never).

    Used where a coroutine must not block its event loop on a socket (the event route).
    Close it with ``await client.aclose()`` in the same loop.

    Raises:
        ValueError: not a ``redis://`` or ``rediss://`` URL (a cluster has no asyncio
            client here).
    """
    scheme = url.partition("://")[0]
    if scheme not in {"redis", "rediss"}:
        raise ValueError(f"an asyncio client needs a redis:// or rediss:// URL, got {url!r}")
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        health_check_interval=0,
    )


class ClusterClient(redis.RedisCluster):
    """``redis.RedisCluster`` whose :meth:`close` also closes every node's pool.

    ``RedisCluster.close`` (redis-py 8.1) leaves the node pools' sockets open, which
    leaks a socket per node and surfaces later as ``ResourceWarning: unclosed socket``.
    """

    def close(self) -> None:
        for node in self.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
        super().close()


def subscribe(client: Any, channel: str) -> Any:
    """A pub/sub connection of ``client`` subscribed to ``channel``; on a cluster one
    node's connection (classic pub/sub is broadcast to every node).

    Raises:
        redis.RedisError, OSError: Redis is unreachable.
    """
    if is_cluster(client):
        client = client.get_redis_connection(client.get_random_node())
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    return pubsub


def is_cluster(client: Any) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, redis.RedisCluster)


@contextlib.contextmanager
def unavailable_as_domain_error(action: str) -> Iterator[None]:
    """Turn redis-py connection failures into :class:`StoreUnavailable`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis unavailable while {action}: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_lenient(k): _lenient(v) for k, v in raw.items()}


def _lenient(value: Any) -> str:
    """Text of a stream field; bytes that are not UTF-8 (only ever written by hand) are
    kept readable rather than failing the whole read."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _float_or_none(value: Any) -> float | None:
    text = _text(value) if value is not None else ""
    return float(text) if text else None


def _int_or_none(value: Any) -> int | None:
    text = _text(value) if value is not None else ""
    return int(text) if text else None
