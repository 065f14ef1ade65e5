"""The live operator config inside a running service process, reloaded without restart.

:class:`LiveConfig` holds the bundle of the live config version. A background
thread subscribes to ``dp:chan:config`` (:data:`service.keys.CONFIG_CHANNEL`), on
which every apply or rollback publishes the new version number, and reloads the
version named by ``dp:{ops}:config:live``. Because pub/sub drops messages while
a connection is down, the thread also re-reads the pointer every
``poll_seconds``; a missed message delays a reload by at most that long.

Until a version is applied in Redis the service runs on ``fallback`` (the
``configs/`` directory it was started with). Listeners registered with
:meth:`LiveConfig.on_change` run in the watcher thread after each reload, e.g. to
refresh in-process caches.

Usage from the app's lifespan (the operator router does this itself)::

    live = LiveConfig(client, fallback=load_config_dir("configs"))
    live.start()
    app.state.live_config = live
    ...
    live.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from service.config.models import ConfigBundle
from service.config.versions import ConfigStore

__all__ = ["LiveConfig"]

log = logging.getLogger("dropprice.config")

Listener = Callable[[ConfigBundle, "int | None"], None]


class LiveConfig:
    """The live config bundle and version, kept current from Redis.

    Args:
        client: redis-py client (single node or cluster).
        fallback: bundle served while no version is live in Redis.
        poll_seconds: pointer re-read interval when no message arrives.
    """

    def __init__(
        self,
        client: Any,
        *,
        fallback: ConfigBundle | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self.store = ConfigStore(client)
        self.poll_seconds = poll_seconds
        self._bundle = fallback if fallback is not None else ConfigBundle()
        self._version: int | None = None
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()

    @property
    def bundle(self) -> ConfigBundle:
        """The bundle served now."""
        return self._bundle

    @property
    def version(self) -> int | None:
        """The live config version served now (``None``: the fallback)."""
        return self._version

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(bundle, version)`` after every reload."""
        self._listeners.append(listener)

    def refresh(self) -> bool:
        """Reload when the pointer names another version; return whether it changed.

        The new version is served only once every listener accepted it; a listener
        that fails (e.g. Redis dropped while re-seeding) leaves the old one in place
        and the next poll retries.
        """
        with self._lock:
            version = self.store.live_version()
            if version is None or version == self._version:
                return False
            loaded = self.store.get(version)
            if loaded is None:  # evicted between the two reads; the next poll catches up
                return False
            for listener in list(self._listeners):
                try:
                    listener(loaded.bundle, loaded.version)
                except Exception:
                    log.exception("config version %s not served yet: a listener failed", version)
                    return False
            self._bundle, self._version = loaded.bundle, loaded.version
        log.info("config version %s is live", version)
        with self._changed:
            self._changed.notify_all()
        return True

    def wait_for(self, version: int, timeout: float) -> bool:
        """Block until ``version`` (or a later one) is served; ``False`` on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._version is not None and self._version >= version, timeout
            )

    def start(self) -> None:
        """Load the live version now and start the watcher thread."""
        with contextlib.suppress(redis.RedisError):
            self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread (waits for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.store.versions.subscribe()
                self.refresh()  # anything applied before the subscription took effect
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=min(self.poll_seconds, 0.5))
                    if message is not None or self._poll_due():
                        self.refresh()
            except (redis.RedisError, OSError, ValueError) as exc:
                log.warning("config watcher: %s; retrying", exc)
                self._stop.wait(min(self.poll_seconds, 1.0))
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    _last_poll: float = 0.0

    def _poll_due(self) -> bool:
        import time

        now = time.monotonic()
        if now - self._last_poll >= self.poll_seconds:
            self._last_poll = now
            return True
        return False
