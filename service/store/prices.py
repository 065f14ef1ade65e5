"""All Redis access for prices, inventory, events and surface versions.

:func:`connect` opens a redis-py client for ``redis://`` (single node) or
``redis+cluster://`` (Redis Cluster) URLs; :class:`PriceStore` wraps it with the
operations the service, the re-fit worker and the CLI need. Keys come from
:mod:`service.keys` (hash-tagged by SKU); every multi-key operation touches one
SKU's keys only, so all of this works unchanged on a cluster. Redis being
unreachable or slower than the client's timeout raises
:class:`~service.exceptions.StoreUnavailable`.

Parts: :mod:`service.store.events` (event streams, dead letters) and
:mod:`service.store.versions` (publishing and reading surfaces, with the publish
protocol); values in :mod:`service.store.records`, the connection in
:mod:`service.store.client`.

Example:
    >>> store = PriceStore(connect("redis://127.0.0.1:6379/0"))  # doctest: +SKIP
    >>> store.seed_inventory("CMX-VAR-001", "brooklyn-panel-page", 120)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.commands.core import Script

from service import keys
from service.store import scripts
from service.store.client import (
    _decode_hash,
    _int_or_none,
    _text,
    connect_async,
    is_cluster,
    subscribe,
    unavailable_as_domain_error,
)
from service.store.events import EventLog
from service.store.records import SkuMeta
from service.store.versions import SurfaceVersions

__all__ = ["PriceStore", "client_of"]


class PriceStore(EventLog, SurfaceVersions):
    """Prices, inventory counters, events and surface versions in Redis.

    Args:
        client: from :func:`connect` (single node or cluster).
        dedupe_ttl_s: how long an ``event_id`` is remembered (replays within it are
            reported ``duplicate`` and change nothing).
        stream_maxlen: approximate number of entries kept per SKU stream.
        keep_versions: surface versions kept for rollback (``Defaults.keep_versions``).
    """

    def __init__(
        self,
        client: Any,
        *,
        dedupe_ttl_s: int = 7 * 24 * 3600,
        stream_maxlen: int = 100_000,
        keep_versions: int = 5,
    ) -> None:
        self.client = client
        self.async_client: Any = None
        self.cluster = is_cluster(client)
        self.dedupe_ttl_ms = dedupe_ttl_s * 1000
        self.stream_maxlen = stream_maxlen
        self.keep_versions = keep_versions
        self._record_events: Script = scripts.register(client, "record_events")
        self._set_inventory: Script = scripts.register(client, "set_inventory")
        self._swap_live: Script = scripts.register(client, "swap_live")
        self._evict: Script = scripts.register(client, "evict_surface")
        self._register_version: Script = scripts.register(client, "register_version")
        self._set_live_version: Script = scripts.register(client, "set_live_version")

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def open_async(self, url: str, *, timeout: float) -> None:
        """Record events through an asyncio client on ``url`` (the same single-node Redis)
        from now on (:func:`connect_async`); close it with :meth:`close_async`."""
        self.async_client = connect_async(url, timeout=timeout)

    async def close_async(self) -> None:
        """Close the asyncio client (in the loop that used it), if one is open."""
        if self.async_client is not None:
            await self.async_client.aclose()
            self.async_client = None

    def subscribe(self, channel: str) -> Any:
        """A pub/sub connection subscribed to ``channel`` (on a cluster: one node's
        connection, classic pub/sub being broadcast to every node).

        Raises:
            StoreUnavailable: Redis is unreachable.
        """
        with unavailable_as_domain_error(f"subscribing to {channel}"):
            return subscribe(self.client, channel)

    def ping(self) -> bool:
        """``True`` when Redis answers; raises :class:`StoreUnavailable` otherwise."""
        with unavailable_as_domain_error("pinging"):
            return bool(self.client.ping())

    # ----------------------------------------------------------------- catalog
    def register_sku(self, meta: SkuMeta) -> None:
        """Write (or refresh) a SKU's catalog entry and add it to the SKU index."""
        with unavailable_as_domain_error(f"registering SKU {meta.sku}"):
            self.client.hset(keys.sku_meta(meta.sku), mapping=_meta_fields(meta))
            self.client.sadd(keys.sku_index(), meta.sku)

    def unregister_sku(self, sku: str) -> None:
        """Drop a SKU's catalog entry and take it out of the SKU index (its counters,
        stream and surfaces stay, for the record)."""
        with unavailable_as_domain_error(f"unregistering SKU {sku}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(keys.sku_meta(sku))
            pipe.srem(keys.sku_index(), sku)
            pipe.execute()

    def register_catalog(
        self, entries: Sequence[tuple[SkuMeta, Mapping[str, int]]]
    ) -> tuple[int, int]:
        """Register many SKUs and seed their counters (only where absent), pipelined.

        Args:
            entries: ``(catalog entry, {market: initial units})`` per SKU.

        Returns:
            ``(counters seeded, live counters kept)``.
        """
        with unavailable_as_domain_error("registering the catalog"):
            pipe = self.client.pipeline(transaction=False)
            for meta, _ in entries:
                pipe.hset(keys.sku_meta(meta.sku), mapping=_meta_fields(meta))
            pipe.execute()
            if entries:
                self.client.sadd(keys.sku_index(), *[meta.sku for meta, _ in entries])
            calls: list[tuple[Script, list[str], list[Any]]] = []
            for meta, units in entries:
                for market, n in units.items():
                    if n < 0:
                        raise ValueError(f"units must be >= 0, got {n} for {meta.sku} in {market}")
                    calls.append(
                        (
                            self._set_inventory,
                            [keys.inventory(meta.sku, market)],
                            ["seed", int(n), keys.UPDATES_CHANNEL, meta.sku, market],
                        )
                    )
            replies = self._run_scripts(calls)
        seeded = sum(int(written) for written, _ in replies)
        return seeded, len(replies) - seeded

    def skus(self) -> list[str]:
        """Every SKU in the index (sorted)."""
        with unavailable_as_domain_error("listing SKUs"):
            return sorted(_text(s) for s in self.client.smembers(keys.sku_index()))

    def catalog(self, skus: Iterable[str] | None = None) -> dict[str, SkuMeta]:
        """Catalog entries of ``skus`` (default: the whole index)."""
        names = list(skus) if skus is not None else self.skus()
        with unavailable_as_domain_error("reading the catalog"):
            pipe = self.client.pipeline(transaction=False)
            for sku in names:
                pipe.hgetall(keys.sku_meta(sku))
            rows = pipe.execute()
        out: dict[str, SkuMeta] = {}
        for sku, raw in zip(names, rows, strict=True):
            if not raw:
                continue
            h = _decode_hash(raw)
            out[sku] = SkuMeta(
                sku=sku,
                list_price=float(h["list_price"]),
                currency=h.get("currency", "USD"),
                markets=tuple(json.loads(h.get("markets", "[]"))),
                drop_id=h.get("drop_id", ""),
                name=h.get("name", ""),
            )
        return out

    # --------------------------------------------------------------- inventory
    def set_inventory(self, sku: str, market: str, units: int) -> int:
        """Overwrite units left (an operator count or correction); returns ``units``."""
        return self._write_inventory("set", sku, market, units)[1]

    def seed_inventory(self, sku: str, market: str, units: int) -> bool:
        """Set units left only if the counter does not exist yet (never overwrites a
        live counter). Returns whether it was written."""
        return self._write_inventory("seed", sku, market, units)[0]

    def _write_inventory(self, mode: str, sku: str, market: str, units: int) -> tuple[bool, int]:
        if units < 0:
            raise ValueError(f"units must be >= 0, got {units} for {sku} in {market}")
        with unavailable_as_domain_error(f"writing inventory of {sku} in {market}"):
            written, now = self._set_inventory(
                keys=[keys.inventory(sku, market)],
                args=[mode, int(units), keys.UPDATES_CHANNEL, sku, market],
            )
        return bool(written), int(now)

    def get_inventory(self, sku: str, market: str) -> int | None:
        """Units left, or ``None`` when the counter was never set."""
        with unavailable_as_domain_error(f"reading inventory of {sku} in {market}"):
            return _int_or_none(self.client.get(keys.inventory(sku, market)))

    def get_inventories(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Units left for many (sku, market) pairs in one pipelined pass (missing omitted)."""
        with unavailable_as_domain_error("reading inventory"):
            pipe = self.client.pipeline(transaction=False)
            for sku, market in pairs:
                pipe.get(keys.inventory(sku, market))
            values = pipe.execute()
        return {pair: int(_text(v)) for pair, v in zip(pairs, values, strict=True) if v is not None}

    # ------------------------------------------------------------------ events
    # ------------------------------------------------------------------ quotes
    def quote_secret(self) -> bytes:
        """The shared random key signing quote ids (created on first use)."""
        with unavailable_as_domain_error("reading the quote signing key"):
            self.client.set(keys.quote_secret(), secrets.token_hex(32), nx=True)
            value = self.client.get(keys.quote_secret())
        return value if isinstance(value, bytes) else str(value).encode()


def client_of(target: Any) -> Any:
    """The redis-py client behind a :class:`PriceStore`, or ``target`` itself when it is
    a client: functions of the Redis layer take either, so callers pass the store."""
    return target.client if isinstance(target, PriceStore) else target


def _meta_fields(meta: SkuMeta) -> dict[str, str]:
    return {
        "list_price": repr(float(meta.list_price)),
        "currency": meta.currency,
        "markets": json.dumps(list(meta.markets)),
        "drop_id": meta.drop_id,
        "name": meta.name,
    }
