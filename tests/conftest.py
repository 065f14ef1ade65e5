"""Session fixtures: real redis-server processes on free ports (no fake Redis).

Hypothesis profiles (``HYPOTHESIS_PROFILE``, ``ci`` when unset, so plain ``pytest``
in CI uses it):

- ``ci``: the same examples on every run (``derandomize=True``, no example database)
  and nothing timed (no deadline, no too-slow health check), so a run's result depends
  on the code alone, not on the seed or the machine's load;
- ``explore``: fresh random examples on each run, kept in the local ``.hypothesis/``
  database so a failure replays. Run it locally (``HYPOTHESIS_PROFILE=explore pytest``);
  every failure it finds becomes an ``@example`` on the test, then a fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings

from service.embedded import RedisCluster, RedisServer
from service.store import ClusterClient

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
