"""Keep a process's :class:`~service.pricebook.PriceBook` in step with Redis.

A daemon thread subscribes to ``dp:chan:updates`` (see :mod:`service.keys`) and
applies every notice as it arrives: ``inv`` notices set a counter, ``live``
notices reload that SKU's surfaces. Right after (re)subscribing it re-reads the
catalog, every counter and every live pointer from Redis (a full resync: notices
may have been lost while disconnected).

While subscribed, notices are not lost, so the work between them is kept small and
incremental (a full reload of a large catalog holds the interpreter for tens of
milliseconds, which every request in the process would wait through). Every
``resync_interval_s`` one *check*:

- reads the publish counter (``dp:{_refit}:publish:seq``, which every publish and
  rollback increments before it moves any SKU's pointers) and only when it moved
  compares the SKUs' live pointers with the surfaces held, reloading the SKUs
  whose version differs;
- re-reads one slice of the counters (all of them over :data:`INVENTORY_ROUNDS`
  checks);
- compares the SKU index with the catalog and reads the entries of new SKUs only
  (every :data:`CATALOG_EVERY` checks, the whole catalog);
- flushes the served-price counts and releases due inventory waves.

When Redis fails (connection refused, reset, or slower than the time budget; a hung
server is noticed by a ping every half second, and a failed request reports itself
through :meth:`LiveSync.mark_unavailable`) the book is marked stale and the thread
retries with a short backoff; the first successful full resync marks it fresh
again. Nothing needs a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from service import keys
from service.exceptions import StoreUnavailable
from service.metrics import Metrics
from service.pricebook import PriceBook, QuoteSigner
from service.store import PriceStore, unavailable_as_domain_error

__all__ = ["LiveSync"]

log = logging.getLogger("dropprice.sync")

CATALOG_EVERY = 60
"""Every 60th check re-reads the whole catalog (markets added to a known SKU by
another process); new SKUs are picked up at every check."""

INVENTORY_ROUNDS = 20
"""Checks over which every counter is re-read once, a slice per check (a guard: while
subscribed every change arrives as a notice). With 3,212 counters a slice is about 160
reads, around a millisecond; the whole set every 100 s at the default interval."""

PING_INTERVAL_S = 0.5
"""How often the sync thread checks that Redis still answers (between resyncs)."""


class LiveSync:
    """The sync thread of one process.

    Args:
        store: the process's store.
        book: the book to keep current.
        resync_interval_s: seconds between full resyncs.
        metrics: where ``dropprice_redis_up`` and ``dropprice_sync_seconds`` go.
        quote_secret: configured quote key; ``None`` fetches the shared Redis key.
    """

    def __init__(
        self,
        store: PriceStore,
        book: PriceBook,
        *,
        resync_interval_s: float = 2.0,
        metrics: Metrics | None = None,
        quote_secret: bytes | None = None,
    ) -> None:
        self.store = store
        self.book = book
        self.resync_interval_s = resync_interval_s
        self.metrics = metrics
        self._quote_secret = quote_secret
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # resync() also runs on other threads (a config reload): one at a time.
        self._work = threading.RLock()
        self._checks = 0
        self._publish_seq = -1
        self._pubsub: Any = None
        self.first_sync = threading.Event()
        self.last_error: str | None = None
        self.before_resync: Callable[[], bool] | None = None
        self.after_resync: Callable[[], object] | None = None  # e.g. inventory waves
        """Called after each (re)subscription, before the resync (the runtime seeds
        the configured inventory there once)."""

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the thread (returns at once; :attr:`first_sync` is set after the
        first successful resync)."""
        self._thread = threading.Thread(target=self._run, name="dropprice-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_pubsub()
        self.book.served.flush(self.store, final=True)  # never raises

    # ------------------------------------------------------------------- work
    def resync(self, *, full: bool = False) -> None:
        """Re-read the catalog, every counter and every live surface that changed from
        Redis into the book (after a (re)subscription, a config reload, or on demand;
        ``full`` is accepted for those callers, every resync is full).

        Raises:
            StoreUnavailable: Redis failed; the book is left as it was.
        """
        with self._work:
            self._resync(full)

    def _resync(self, full: bool) -> None:
        started = time.monotonic()
        self._ensure_signer()
        # The publish counter before the pointers: a publish that moves pointers after
        # this read is seen by the next check (and announced meanwhile).
        self._publish_seq = self.store.publish_count()
        self.book.merge_catalog(self.store.catalog())  # SKUs other processes registered
        pairs = self.book.pairs()
        counts = self.store.get_inventories(pairs)
        skus = sorted(self.book.catalog)
        self._reload_changed(skus)
        self.book.resync_units(counts, started)
        self.book.forget_surfaces(skus)
        self._after_step(started)

    def check(self) -> None:
        """The periodic incremental step (see the module docstring).

        Raises:
            StoreUnavailable: Redis failed; what was applied stays applied.
        """
        with self._work:
            started = time.monotonic()
            self._ensure_signer()
            self._checks += 1
            if self._checks % CATALOG_EVERY == 0:
                self.book.merge_catalog(self.store.catalog())
            else:
                new = set(self.store.skus()) - self.book.catalog.keys()
                if new:
                    self.book.merge_catalog(self.store.catalog(sorted(new)))
            seq = self.store.publish_count()
            if seq != self._publish_seq:
                self._publish_seq = seq
                self._reload_changed(sorted(self.book.catalog))
            pairs = self.book.pairs()
            step = -(-len(pairs) // INVENTORY_ROUNDS)
            start = (self._checks % INVENTORY_ROUNDS) * step
            if pairs[start : start + step]:
                counts = self.store.get_inventories(pairs[start : start + step])
                self.book.resync_units(counts, started)
            self._after_step(started)

    def _ensure_signer(self) -> None:
        if self.book.signer is None:
            secret = self._quote_secret or self.store.quote_secret()
            self.book.signer = QuoteSigner(secret, self.book.quote_ttl_s)

    def _reload_changed(self, skus: list[str]) -> None:
        """Reload the surfaces of the SKUs whose live pointers differ from those held."""
        pointers = self.store.live_pointers(skus)
        held = self.book.live_versions_by_sku()
        for sku in skus:
            if pointers.get(sku, {}) != held.get(sku, {}):
                self.book.set_surfaces(sku, self.store.live_surfaces(sku))

    def _after_step(self, started: float) -> None:
        self.book.last_sync = time.time()
        self.book.served.flush(self.store)  # served-price look-ups (service.served)
        if self.after_resync is not None:
            self.after_resync()
        if self.metrics is not None:
            self.metrics.sync_seconds.set(time.monotonic() - started)

    def mark_unavailable(self, error: str) -> None:
        """A request failed on Redis: serve ``stale`` until the sync thread has
        confirmed Redis is back and resynchronised."""
        self._set_health(False, error)

    def apply(self, notice: str) -> None:
        """Apply one ``dp:chan:updates`` notice (the sale script sends the counts of
        one call as one notice, a line each)."""
        for line in notice.split("\n"):
            parts = line.split("\t")
            if parts[0] == "inv" and len(parts) in (4, 5):
                seq = parts[4] if len(parts) == 5 else None
                self.book.set_units(parts[1], parts[2], int(parts[3]), seq=seq)
            elif parts[0] == "live" and len(parts) == 2:
                with self._work:
                    self.book.set_surfaces(parts[1], self.store.live_surfaces(parts[1]))

    def _open_pubsub(self) -> Any:
        return self.store.subscribe(keys.UPDATES_CHANNEL)

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - best effort on a dead socket
                log.debug("closing the update subscription failed", exc_info=True)

    def _set_health(self, fresh: bool, error: str | None = None) -> None:
        if fresh and self.book.stale:
            log.info("in sync with redis", extra={"skus": len(self.book.catalog)})
        if not fresh and not self.book.stale:
            log.warning("lost redis; serving stale prices", extra={"error": error})
        self.book.stale = not fresh
        self.last_error = error
        if self.metrics is not None:
            self.metrics.redis_up.set(1 if fresh else 0)

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                self._pubsub = self._open_pubsub()
                if self.before_resync is not None:
                    self.before_resync()
                self.resync()
                self._set_health(True)
                self.first_sync.set()
                backoff = 0.05
                next_resync = time.monotonic() + self.resync_interval_s
                next_ping = time.monotonic() + PING_INTERVAL_S
                while not self._stop.is_set():
                    pubsub = self._pubsub
                    if pubsub is None:
                        break
                    with unavailable_as_domain_error("waiting for updates"):
                        message = pubsub.get_message(timeout=0.1)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self.apply(data.decode() if isinstance(data, bytes) else str(data))
                    now = time.monotonic()
                    if self.book.stale and now >= next_ping:
                        # Recovery after a request-path failure: re-read everything.
                        self.resync()
                        self._set_health(True)
                        next_resync = time.monotonic() + self.resync_interval_s
                        next_ping = time.monotonic() + PING_INTERVAL_S
                    elif now >= next_resync:
                        self.check()
                        next_resync = time.monotonic() + self.resync_interval_s
                        next_ping = time.monotonic() + PING_INTERVAL_S
                    elif now >= next_ping:
                        # A hung server keeps the subscription open: ping it.
                        self.store.ping()
                        next_ping = time.monotonic() + PING_INTERVAL_S
            except (StoreUnavailable, redis.RedisError, OSError) as exc:
                if self._stop.is_set():
                    break
                self._set_health(False, str(exc))
                self._close_pubsub()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            except Exception as exc:  # keep serving; a bug here must not kill the thread
                log.exception("sync thread error")
                self._set_health(False, repr(exc))
                self._close_pubsub()
                self._stop.wait(1.0)
