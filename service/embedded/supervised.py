"""The Redis ``dropprice serve`` runs by itself: started in a data folder, restarted if it dies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from service.embedded.datadir import DataDirLock, ensure_password, stable_port, write_address
from service.embedded.process import RedisServer, _port_is_listenable
from service.exceptions import RedisServerError

__all__ = ["EmbeddedRedis"]


class EmbeddedRedis:
    """``dropprice serve``'s own Redis: one per data folder, password-protected, supervised.

    :meth:`start` locks the folder (:class:`DataDirLock`), starts a persistent
    redis-server (append-only file, ``appendfsync always``) on ``port`` (default
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
