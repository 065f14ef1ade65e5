"""A ``dropprice serve`` data folder: its password, lock, address and stable port,
and how ``refit``, ``config`` and ``worker`` find the server of a folder."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from pathlib import Path

from service.embedded.process import RedisServer, _write_private
from service.exceptions import DataDirInUse, RedisServerError

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataDirLock",
    "PASSWORD_FILE",
    "embedded_url",
    "ensure_password",
    "redact_url",
    "resolve_redis_url",
    "stable_port",
]


DEFAULT_DATA_DIR = Path(".dropprice/redis")
"""Data folder of ``dropprice serve``'s embedded Redis, relative to the working folder."""
PASSWORD_FILE = "redis.password"
ADDRESS_FILE = "redis.json"
LOCK_FILE = "serve.lock"
STABLE_PORTS = range(20000, 30000)
"""Default ports of embedded servers: below Linux's ephemeral range (32768-60999), so
an outgoing connection never happens to hold one."""


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
