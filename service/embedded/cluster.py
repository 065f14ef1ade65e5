"""A local Redis Cluster of ``redis-server`` processes (the test-suite's conformance runs)."""

from __future__ import annotations

import time
from types import TracebackType

import redis

from service.embedded.process import RedisServer
from service.exceptions import RedisServerError

__all__ = ["RedisCluster"]


CLUSTER_SLOTS = 16384


class RedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) on local free ports.

    Slots are split evenly with ``CLUSTER ADDSLOTS`` and the nodes joined with
    ``CLUSTER MEET``; :meth:`start` returns once every node reports
    ``cluster_state:ok``.
    """

    def __init__(self, masters: int = 3, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.nodes = [
            RedisServer(cluster=True, appendonly=False, host=host) for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://{self.host}:{self.nodes[0].port}/0"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(n.host, n.port) for n in self.nodes]

    def start(self, timeout: float = 30.0) -> RedisCluster:
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(host=n.host, port=n.port) for n in self.nodes]
        try:
            bounds = [
                round(i * CLUSTER_SLOTS / len(self.nodes)) for i in range(len(self.nodes) + 1)
            ]
            for client, lo, hi in zip(clients, bounds[:-1], bounds[1:], strict=True):
                client.execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi))  # type: ignore[no-untyped-call]
            for node in self.nodes[1:]:
                clients[0].execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER", "MEET", node.host, node.port
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                infos = [
                    c.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                    for c in clients
                ]
                texts = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
                if all(
                    "cluster_state:ok" in t and f"cluster_known_nodes:{len(self.nodes)}" in t
                    for t in texts
                ):
                    return self
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
        self.stop()
        raise RedisServerError(f"Redis Cluster did not reach cluster_state:ok in {timeout}s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
