"""Session fixtures: real redis-server processes on free ports (no fake Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from service.embedded import RedisCluster, RedisServer
from service.store import ClusterClient


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real single-node redis-server for the whole session (AOF on)."""
    server = RedisServer(appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster (same binary, cluster mode) for the session."""
    cluster = RedisCluster(masters=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's single node, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> Iterator[str]:
    """``redis+cluster://`` URL of the session's cluster, flushed before each test."""
    client = ClusterClient(host=redis_cluster.host, port=redis_cluster.nodes[0].port)
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    client.close()
    yield redis_cluster.url


@pytest.fixture(params=["single", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """Conformance fixture: each test using it runs on a single node and on a cluster."""
    if request.param == "single":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("cluster_url"))
