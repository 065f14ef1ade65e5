"""The resources of one running service process, owned by the app's lifespan.

:class:`ServiceRuntime` opens the Redis client, loads the operator configs, seeds
inventory for SKUs that have no counter yet (never overwriting a live one),
registers the catalog in Redis, and runs the sync thread that keeps the
in-process :class:`~service.pricebook.PriceBook` current. Routes reach it through
the dependencies in :mod:`service.deps`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from service.auth import ApiKeys
from service.config.loader import load_config_dir
from service.config.models import ConfigBundle
from service.exceptions import StoreUnavailable
from service.metrics import Metrics
from service.pricebook import PriceBook, catalog_from_config
from service.settings import Settings
from service.store import PriceStore, SkuMeta, connect
from service.sync import LiveSync
from service.waves import WaveReleaser, initial_inventory

__all__ = ["ServiceRuntime", "load_bundle", "seed_from_config"]

log = logging.getLogger("dropprice.runtime")


def load_bundle(config_dir: Path) -> ConfigBundle:
    """Configs under ``config_dir``; an empty bundle (and a warning) if it is absent.

    Raises:
        ConfigError: a config file is invalid.
    """
    if not Path(config_dir).is_dir():
        log.warning(
            "config folder not found; serving no SKUs", extra={"config_dir": str(config_dir)}
        )
        return ConfigBundle()
    return load_config_dir(config_dir)


def seed_from_config(store: PriceStore, bundle: ConfigBundle) -> dict[str, int]:
    """Register every configured SKU and seed counters that do not exist yet.

    Returns:
        ``{"skus": registered, "seeded": counters written, "kept": live counters kept}``.
    """
    entries = catalog_from_config(bundle)
    batch: list[tuple[SkuMeta, dict[str, int]]] = []
    for drop in bundle.drops:
        for sku in drop.skus:
            entry = entries[sku.sku]
            if entry.drop_id != drop.id:
                continue  # a later drop sells this SKU; it owns the entry
            meta = SkuMeta(
                sku=sku.sku,
                list_price=sku.list_price,
                currency=entry.currency,
                markets=entry.markets,
                drop_id=drop.id,
                name=sku.name,
            )
            batch.append((meta, initial_inventory(drop, sku)))  # wave arms: first wave
    seeded, kept = store.register_catalog(batch)
    return {"skus": len(entries), "seeded": seeded, "kept": kept}


class ServiceRuntime:
    """Store, configs, price book, keys and sync thread of one process."""

    def __init__(self, settings: Settings, metrics: Metrics, bundle: ConfigBundle) -> None:
        self.settings = settings
        self.metrics = metrics
        self.config = bundle
        self.keys = ApiKeys(settings.api_keys, disabled=settings.auth_disabled)
        self.store = PriceStore(
            connect(
                settings.redis_url, timeout=settings.redis_timeout_s, cluster=settings.redis_cluster
            ),
            dedupe_ttl_s=settings.dedupe_ttl_s,
            stream_maxlen=settings.stream_maxlen,
            keep_versions=bundle.defaults.keep_versions,
        )
        if not self.store.cluster:
            # The event route records batches on it without a thread (intake).
            self.store.open_async(settings.redis_url, timeout=settings.redis_timeout_s)
        self.book = PriceBook(quote_ttl_s=self.quote_ttl_s)
        self.book.set_catalog(catalog_from_config(bundle))
        secret = settings.quote_secret
        self.sync = LiveSync(
            self.store,
            self.book,
            resync_interval_s=settings.resync_interval_s,
            metrics=metrics,
            quote_secret=secret.get_secret_value().encode() if secret is not None else None,
        )
        self.seeded = threading.Event()
        self.intensity_cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self.started_at = time.time()

    @property
    def quote_ttl_s(self) -> int:
        return self.settings.quote_ttl_seconds or self.config.defaults.quote_ttl_seconds

    @property
    def intensity_window_hours(self) -> int:
        return self.config.defaults.intensity_window_hours

    def seed(self) -> bool:
        """Register and seed the configured SKUs once; ``False`` while Redis is away."""
        if self.seeded.is_set():
            return True
        try:
            counts = seed_from_config(self.store, self.config)
        except StoreUnavailable as exc:
            log.warning("cannot seed inventory yet; will retry", extra={"error": str(exc)})
            return False
        log.info("catalog registered", extra=counts)
        self.seeded.set()
        return True

    def apply_config(self, bundle: ConfigBundle) -> dict[str, int]:
        """Serve a newly validated config bundle (operator reload): register and seed
        its SKUs (live counters are kept) and update the in-process catalog.

        Raises:
            StoreUnavailable: Redis is unreachable; nothing changed in the process.
        """
        counts = seed_from_config(self.store, bundle)
        self.config = bundle
        self.book.set_catalog(catalog_from_config(bundle))
        self.book.quote_ttl_s = self.quote_ttl_s
        self.store.keep_versions = bundle.defaults.keep_versions
        self.sync.resync(full=True)
        return counts

    def start(self, wait_s: float = 3.0) -> None:
        """Seed, start the sync thread and wait up to ``wait_s`` for the first sync."""
        self.sync.before_resync = self.seed
        self.sync.after_resync = WaveReleaser(self.store, lambda: self.config).release_due
        self.sync.start()
        self.sync.first_sync.wait(wait_s)

    async def aclose(self) -> None:
        """:meth:`close`, and the asyncio Redis client in the loop that used it."""
        await self.store.close_async()
        self.close()

    def close(self) -> None:
        self.sync.stop()
        self.store.close()
