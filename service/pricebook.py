"""The in-process view of prices: catalog, live surfaces, units left, quotes.

A price read never waits on Redis. Each service process holds the live price
surfaces and the units-left counters of every SKU in memory; Redis stays the
source of truth and the process follows it (:mod:`service.sync`: the sale script
publishes every new count, a version swap publishes the SKU, and a periodic
incremental check repairs anything missed). A read is then

.. math::

    p = P_v[\\min(n, N),\\ \\mathrm{clip}(\\lfloor (now - t_0) / \\Delta \\rfloor, 0, T - 1)]

with ``P_v`` the live surface ``[N+1, T]`` of version ``v``, ``n`` the units left,
``t_0`` the start of period 0 and ``Delta`` the period length: the cell
:func:`service.store.cells.cell` names, the same one the sale script charges. With no surface the
catalog's list price is served (``source: base``), clamped to the SKU's floor and
ceiling; while the process is out of touch with Redis every answer is marked
``source: stale`` (the last surfaces held, which are guardrailed already).

Quotes are stateless: a ``quote_id`` is ``q1.<payload>.<mac>`` where the payload
names the SKU, market, price, expiry and version, and the MAC is HMAC-SHA256 over
it with the service's quote key (truncated to 128 bits). Any worker or host with
the same key verifies it without a Redis call, and a sale carrying a valid,
unexpired quote is charged the quoted price.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from service.config.models import ConfigBundle
from service.exceptions import UnknownMarket, UnknownSku
from service.served import ServedPriceLog
from service.store import SkuMeta, SurfaceRecord
from service.store.cells import CellGrid, cell, epoch_ms

__all__ = [
    "CatalogEntry",
    "PriceBook",
    "PriceView",
    "QuoteCheck",
    "QuoteSigner",
    "catalog_from_config",
]

Source = Literal["surface", "base", "stale"]


class CatalogEntry(NamedTuple):
    """What the service knows of a SKU before any surface: list price and markets."""

    sku: str
    list_price: float
    currency: str
    markets: tuple[str, ...]
    floor: float | None = None
    ceiling: float | None = None
    drop_id: str = ""
    arms: Mapping[str, str] | None = None
    """Market -> experiment arm of the SKU's drop (``None``: the drop has no arms)."""
    fixed_markets: frozenset[str] = frozenset()
    """Markets whose arm prices ``fixed``: they serve the list price, never a surface."""

    @property
    def base_price(self) -> float:
        """The list price inside the SKU's floor and ceiling."""
        price = self.list_price
        if self.floor is not None:
            price = max(price, self.floor)
        if self.ceiling is not None:
            price = min(price, self.ceiling)
        return price


class PriceView(NamedTuple):
    """One served price (the body of ``GET /v1/prices/{sku}``)."""

    sku: str
    market: str
    price: float
    currency: str
    version: str | None
    inventory: int | None
    source: Source
    quote_id: str | None
    expires_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


class QuoteCheck(NamedTuple):
    """Result of checking a sale's ``quote_id``: ``honoured`` (with its price),
    ``expired`` or ``invalid`` (forged, or for another SKU or market)."""

    status: Literal["honoured", "expired", "invalid"]
    price: float | None = None
    version: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class QuoteSigner:
    """Signs and checks quote ids (stateless price locks).

    Args:
        secret: the quote key (settings or the shared Redis key).
        ttl_s: how long a quote is honoured.
    """

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._key = hashlib.sha256(b"dropprice-quote\x00" + secret).digest()
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str, float, str | None, int], tuple[str, str]] = {}

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def sign(
        self, sku: str, market: str, price: float, version: str | None, now: float
    ) -> tuple[str, str]:
        """``(quote_id, expires_at ISO 8601)`` for a price served at ``now`` (epoch s).

        The expiry is rounded up to the next tenth of a second (a quote lives ``ttl_s``
        to ``ttl_s + 0.1`` seconds), so the reads of one price within that tenth share
        one signed quote: signing happens once per price and tick, not per request.
        """
        expires_ds = int(now * 10) + 1 + self.ttl_s * 10
        cache_key = (sku, market, price, version, expires_ds)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        payload = f"{sku}|{market}|{price!r}|{expires_ds * 100}|{version or ''}".encode()
        quote_id = f"q1.{_b64(payload)}.{_b64(self._mac(payload))}"
        expires = datetime.fromtimestamp(expires_ds / 10, UTC)
        signed = quote_id, expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if len(self._cache) >= 8192:
            self._cache.clear()
        self._cache[cache_key] = signed
        return signed

    def check(self, quote_id: str, sku: str, market: str, now: float) -> QuoteCheck:
        """Check a quote presented with a sale of ``sku`` in ``market`` at ``now``."""
        try:
            tag, payload_b64, mac_b64 = quote_id.split(".")
            payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        except ValueError:
            return QuoteCheck("invalid")
        if tag != "q1" or not hmac.compare_digest(mac, self._mac(payload)):
            return QuoteCheck("invalid")
        q_sku, q_market, price, expires_ms, version = payload.decode().split("|")
        if q_sku != sku or q_market != market:
            return QuoteCheck("invalid")
        if now * 1000 > int(expires_ms):
            return QuoteCheck("expired", float(price), version or None)
        return QuoteCheck("honoured", float(price), version or None)


class _Live(NamedTuple):
    version: str
    price: npt.NDArray[np.float64]
    grid: CellGrid
    currency: str
    record: SurfaceRecord


def catalog_from_config(bundle: ConfigBundle) -> dict[str, CatalogEntry]:
    """Catalog entries of every SKU in the operator configs (latest drop wins)."""
    out: dict[str, CatalogEntry] = {}
    for drop in sorted(bundle.drops, key=lambda d: d.windows[0].start):
        for sku in drop.skus:
            guard = bundle.guardrails_for(drop, sku)
            out[sku.sku] = CatalogEntry(
                sku=sku.sku,
                list_price=sku.list_price,
                currency=bundle.currency_for(sku),
                markets=tuple(sku.inventory) or drop.markets,
                floor=guard.floor,
                ceiling=guard.ceiling,
                drop_id=drop.id,
                arms={m: arm.name for arm in drop.arms for m in arm.markets} or None,
                fixed_markets=frozenset(
                    m for arm in drop.arms if arm.pricing == "fixed" for m in arm.markets
                ),
            )
    return out


class PriceBook:
    """Prices, units left and quotes held in the process (see the module docstring).

    Written by the sync thread and the event route, read by every price request;
    single assignments into dicts are atomic under the GIL, so readers take no lock.
    """

    def __init__(self, *, quote_ttl_s: int = 120, signer: QuoteSigner | None = None) -> None:
        self.catalog: dict[str, CatalogEntry] = {}
        self.quote_ttl_s = quote_ttl_s
        self.signer = signer
        self.stale = True
        self.last_sync: float | None = None
        self._surfaces: dict[tuple[str, str], _Live] = {}
        self._units: dict[tuple[str, str], int] = {}
        self._stamps: dict[tuple[str, str], float] = {}
        self._seqs: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.served = ServedPriceLog()  # look-ups with arm and probability, see service.served
        # (sku, market) -> the inputs of its last answer and that answer (see :meth:`price`).
        self._answers: dict[tuple[str, str], tuple[Any, ...]] = {}

    # ------------------------------------------------------------------ writes
    def set_catalog(self, entries: Mapping[str, CatalogEntry]) -> None:
        self.catalog = dict(entries)

    def merge_catalog(self, metas: Mapping[str, SkuMeta]) -> None:
        """Add SKUs registered in Redis by other processes (configured ones keep
        their guardrails; their markets are unioned)."""
        merged = dict(self.catalog)
        for sku, meta in metas.items():
            known = merged.get(sku)
            if known is None:
                merged[sku] = CatalogEntry(
                    sku, meta.list_price, meta.currency, meta.markets, drop_id=meta.drop_id
                )
            elif set(meta.markets) - set(known.markets):
                markets = tuple(dict.fromkeys(known.markets + meta.markets))
                merged[sku] = known._replace(markets=markets)
        self.catalog = merged

    def set_units(self, sku: str, market: str, units: int, *, seq: str | None = None) -> None:
        """Apply a units-left notice (pub/sub or a write's own reply).

        ``seq`` is the stream id of the event that left ``units`` (ids of a SKU's stream
        only grow): a count older than one already applied is ignored, so a notice that
        arrives after this process's own, later write cannot undo it. A count without one
        (an operator's set, a resync) is applied as it comes.
        """
        pair = (sku, market)
        if seq is not None:
            order = _stream_order(seq)
            if order is not None:
                if order <= self._seqs.get(pair, (-1, -1)):
                    return
                self._seqs[pair] = order
        self._units[pair] = units
        self._stamps[pair] = time.monotonic()

    def resync_units(self, counts: Mapping[tuple[str, str], int], read_started: float) -> None:
        """Apply counters read in a resync that started at ``read_started``
        (monotonic), skipping those a fresher notice updated meanwhile."""
        with self._lock:
            for pair, units in counts.items():
                if self._stamps.get(pair, 0.0) < read_started:
                    self._units[pair] = units

    def set_surfaces(self, sku: str, live: Mapping[str, tuple[str, SurfaceRecord]]) -> None:
        """Replace the live surfaces of ``sku`` (markets absent from ``live`` lose theirs)."""
        # Snapshots (list() of a dict is atomic under the GIL): other threads may write.
        for market in [m for (s, m) in list(self._surfaces) if s == sku and m not in live]:
            self._surfaces.pop((sku, market), None)
        for market, (version, rec) in live.items():
            price = np.ascontiguousarray(rec.price, dtype=np.float64)
            self._surfaces[(sku, market)] = _Live(
                version=version,
                price=price,
                grid=CellGrid(
                    price.shape[0],
                    price.shape[1],
                    epoch_ms(rec.period_start),
                    rec.period_seconds * 1000,
                ),  # fmt: skip
                currency=rec.currency,
                record=rec,
            )

    def live_versions(self, sku: str) -> dict[str, str]:
        """``{market: version}`` of the surfaces held for ``sku``."""
        return {m: live.version for (s, m), live in list(self._surfaces.items()) if s == sku}

    def live_versions_by_sku(self) -> dict[str, dict[str, str]]:
        """``{sku: {market: version}}`` of every surface held (one pass)."""
        out: dict[str, dict[str, str]] = {}
        for (sku, market), live in list(self._surfaces.items()):
            out.setdefault(sku, {})[market] = live.version
        return out

    def surface(self, sku: str, market: str) -> tuple[str, SurfaceRecord] | None:
        live = self._surfaces.get((sku, market))
        return (live.version, live.record) if live is not None else None

    def units(self, sku: str, market: str) -> int | None:
        return self._units.get((sku, market))

    def pairs(self) -> list[tuple[str, str]]:
        return [(e.sku, m) for e in list(self.catalog.values()) for m in e.markets]

    def forget_surfaces(self, keep: Iterable[str]) -> None:
        """Drop surfaces of SKUs not in ``keep``."""
        kept = set(keep)
        for pair in [p for p in list(self._surfaces) if p[0] not in kept]:
            self._surfaces.pop(pair, None)

    # ------------------------------------------------------------------- reads
    def resolve_market(self, sku: str, market: str | None) -> tuple[CatalogEntry, str]:
        """The catalog entry and market of a read.

        Raises:
            UnknownSku: the SKU is in no config and has no catalog entry in Redis.
            UnknownMarket: the SKU is not sold in ``market``, or ``market`` is
                omitted for a SKU sold in several.
        """
        entry = self.catalog.get(sku)
        if entry is None:
            raise UnknownSku(f"unknown SKU {sku!r}: it is in no drop config")
        if market is None:
            if len(entry.markets) == 1:
                return entry, entry.markets[0]
            raise UnknownMarket(
                f"SKU {sku!r} is sold in several markets: pass ?market= one of "
                f"{sorted(entry.markets)}"
            )
        if market not in entry.markets:
            raise UnknownMarket(
                f"SKU {sku!r} is not sold in market {market!r}; allowed {sorted(entry.markets)}"
            )
        return entry, market

    def price(self, sku: str, market: str | None = None, now: float | None = None) -> PriceView:
        """The price to serve now (see the module docstring).

        An answer is remembered per SKU and market with what it was made of (catalog
        entry, live surface, units left, staleness, quote signer, cell and quote tick,
        compared by identity or value on every read), so the reads of one price within
        a tick of the quote's expiry share one :class:`PriceView`: the surface's cell
        value, the signature and the view are made once per tick, not per request.
        Every read is still counted in the served-price log.

        Raises:
            UnknownSku, UnknownMarket: see :meth:`resolve_market`.
        """
        entry, market = self.resolve_market(sku, market)
        if now is None:
            now = time.time()
        pair = (sku, market)
        units = self._units.get(pair)
        live = self._surfaces.get(pair)
        if live is not None and market in entry.fixed_markets:
            live = None  # a fixed-price experiment arm: the list price, whatever is published
        at = cell(units, epoch_ms(now), live.grid) if live is not None else None
        stale = self.stale
        signer = self.signer
        tick = int(now * 10)  # the quote's expiry is rounded to a tenth of a second
        hour = int(now // 3600)  # the served-price log's hour
        last = self._answers.get(pair)
        if (
            last is not None
            and last[0] is entry
            and last[1] is live
            and last[2] == units
            and last[3] == stale
            and last[4] is signer
            and last[5] == at
            and last[6] == tick
            and last[7] == hour
        ):
            view: PriceView = last[8]
            served = last[9]
        else:
            view = self._answer(sku, market, entry, live, at, units, stale, signer, now)
            arm = entry.arms.get(market, "") if entry.arms else ""
            served = (sku, market, hour, view.price, arm, 1.0)
            self._answers[pair] = (entry, live, units, stale, signer, at, tick, hour, view, served)
        self.served.count(served)
        return view

    def _answer(
        self,
        sku: str,
        market: str,
        entry: CatalogEntry,
        live: _Live | None,
        at: tuple[int, int] | None,
        units: int | None,
        stale: bool,
        signer: QuoteSigner | None,
        now: float,
    ) -> PriceView:
        """The view of a price read: the surface's cell (or the list price) and its quote."""
        if live is not None and at is not None:
            price = float(live.price.item(*at))
            version: str | None = live.version
            currency = live.currency
            source: Source = "stale" if stale else "surface"
        else:
            price = entry.base_price
            version = None
            currency = entry.currency
            source = "stale" if stale else "base"
        quote_id: str | None = None
        expires_at: str | None = None
        if signer is not None:
            quote_id, expires_at = signer.sign(sku, market, price, version, now)
        return PriceView(sku, market, price, currency, version, units, source, quote_id, expires_at)


def _stream_order(stream_id: str) -> tuple[int, int] | None:
    """``"<ms>-<n>"`` as a comparable pair; ``None`` when it is not a stream id."""
    ms, _, n = stream_id.partition("-")
    if not (ms.isdigit() and n.isdigit()):
        return None
    return int(ms), int(n)
