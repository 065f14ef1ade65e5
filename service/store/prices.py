"""All Redis access for prices, inventory, events and surface versions.

:func:`connect` opens a redis-py client for ``redis://`` (single node) or
``redis+cluster://`` (Redis Cluster) URLs; :class:`PriceStore` wraps it with the
operations the service, the re-fit worker and the CLI need. Keys come from
:mod:`service.keys` (hash-tagged by SKU); every multi-key operation touches one
SKU's keys only, so all of this works unchanged on a cluster. Redis being
unreachable or slower than the client's timeout raises
:class:`~service.exceptions.StoreUnavailable`.

Publishing price surfaces
-------------------------
The re-fit worker publishes a new version with::

    store.publish_surfaces(
        "2026-12-05T17-00-v12",                       # version id (Identifier chars)
        {("CMX-VAR-001", "brooklyn-panel-page"): SurfaceRecord(
            price=price_nt,                           # float [N+1, T]: price with n units
                                                      #   left in period t (guardrails applied)
            period_start=window_start,                # aware datetime of period 0
            period_seconds=600,                       # length of one period
            guardrail_codes=codes_nt,                 # int8 [N+1, T] (pricing.guardrails codes)
            currency="USD",
            elasticity={"beta": -1.7, "beta_se": 0.2, "delta": -0.3, "gamma": 0.8},
            explain={"fit_version": "...", "objective": "revenue"},   # any JSON
        )},
        meta={"fit": {...}, "created_by": "worker-1"},  # JSON, kept in the version record
    )

0. The version is registered (``register_version.lua``, all keys in the
   ``{_refit}`` hash slot): it takes the next number from ``dp:{_refit}:publish:seq``
   and creates ``dp:{_refit}:version:<v>``, refused when the id is taken or, with
   ``fence=(lock_key, token)``, when the lock no longer holds that token
   (:class:`~service.exceptions.FenceLost`, nothing written). The registry shares
   the re-fit lock's slot precisely so that this check and the registration are one
   atomic step on a cluster too.
1. Every surface of the version is written under its own keys
   (``dp:{sku}:surface:<v>:<market>`` header, ``...:p`` float64 cells, ``...:g``
   int8 codes); nothing serves them yet.
2. For each SKU, one script switches ``dp:{sku}:live`` to the new version for all
   of the SKU's markets at once and announces it on ``dp:chan:updates``: a reader
   sees either the old or the new surface of a SKU, never half a publish. (Across
   SKUs the switch is SKU by SKU: a cluster has no cross-slot transactions.) The
   script carries the publish number and refuses when ``dp:{sku}:live:seq`` holds a
   higher one, so a publisher paused past a newer publish never moves a SKU back.
3. ``dp:{_refit}:live`` moves to the version under the same rule, the version joins
   ``dp:{_refit}:versions`` and versions beyond the ``keep`` most recent are
   evicted, except surfaces a market still serves. A publish overtaken in steps 2-3
   is recorded ``superseded`` and raises
   :class:`~service.exceptions.PublishSuperseded`.

:meth:`PriceStore.rollback` switches every surface of an older kept version back
the same way; :meth:`PriceStore.list_versions` and :meth:`PriceStore.live_version`
report the registry. A surface's cell for units left ``n > N`` is row ``N``;
periods before period 0 use column 0 and after the last use column ``T - 1``.

Events
------
Every accepted event is appended (by the same script that dedupes it and moves
inventory) to the stream of its SKU, ``dp:{sku}:events``; an event naming several
SKUs (an announcement) is one entry in each. Streams are per SKU so the sale
script stays single-slot on a cluster. A consumer lists them with
:meth:`PriceStore.event_streams` (the SKU index ``dp:index:skus``), creates its
consumer group on each with :meth:`PriceStore.ensure_group` (the re-fit worker
uses group ``refit``), reads with :meth:`PriceStore.read_events` (``XREADGROUP``
stream by stream, pipelined per node) and acknowledges with
:meth:`PriceStore.ack`. Entry fields: ``type``, ``event_id``, ``sku``,
``market``, ``ts`` (ISO 8601 with zone), ``quantity``, ``unit_price`` (reported
by the POS), ``charged_price`` (quote or surface price of a sale), ``units_left``,
``version`` (live surface version), ``kind`` (inventory effect), plus the
event's own fields (``reach``, ``quote_id``, ...). Streams are trimmed to about
``stream_maxlen`` entries per SKU.

Example:
    >>> store = PriceStore(connect("redis://127.0.0.1:6379/0"))  # doctest: +SKIP
    >>> store.seed_inventory("CMX-VAR-001", "brooklyn-panel-page", 120)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.crc import key_slot
from redis.retry import Retry

from service import keys
from service.exceptions import FenceLost, PublishSuperseded, StoreUnavailable
from service.store import scripts
from service.store.cells import CellGrid, cell, epoch_ms

__all__ = [
    "DeadLetter",
    "EventKind",
    "EventOutcome",
    "EventRecord",
    "PriceStore",
    "PublishResult",
    "RedisClient",
    "SkuMeta",
    "StreamEvent",
    "SurfaceRecord",
    "VersionInfo",
    "connect",
]

RedisClient: TypeAlias = "redis.Redis | redis.RedisCluster"
EventKind = Literal["sale", "return", "restock", "signal"]

_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
    redis.exceptions.MasterDownError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
)


def connect(url: str, *, timeout: float = 0.25, cluster: bool | None = None) -> Any:
    """Open a redis-py client for ``url``.

    Args:
        url: ``redis://host:port/db`` for one server, ``redis+cluster://host:port`` for
            a Redis Cluster (any node; the rest are discovered). ``rediss://`` and
            ``rediss+cluster://`` use TLS.
        timeout: socket connect and read timeout in seconds: the time budget of one
            Redis call (the service's ``DROPPRICE_REDIS_TIMEOUT_MS``).
        cluster: force cluster mode for a plain ``redis://`` URL (``--cluster``).

    Returns:
        ``redis.Redis`` or ``redis.RedisCluster`` (typed ``Any`` because the two
        share no base class); one failed attempt is retried once, without backoff.

    Raises:
        ValueError: the URL scheme is not one of the above.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in {"redis", "rediss", "redis+cluster", "rediss+cluster"}:
        raise ValueError(
            f"Redis URL must start with redis://, rediss://, redis+cluster:// or "
            f"rediss+cluster://, got {url!r}"
        )
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 0,
    }
    if scheme.endswith("+cluster") or cluster:
        base = scheme.removesuffix("+cluster")
        return ClusterClient.from_url(f"{base}://{rest}", **options)
    return redis.Redis.from_url(url, **options)


class ClusterClient(redis.RedisCluster):
    """``redis.RedisCluster`` whose :meth:`close` also closes every node's pool.

    ``RedisCluster.close`` (redis-py 8.1) leaves the node pools' sockets open, which
    leaks a socket per node and surfaces later as ``ResourceWarning: unclosed socket``.
    """

    def close(self) -> None:
        for node in self.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
        super().close()


def client_of(target: Any) -> Any:
    """The redis-py client behind a :class:`PriceStore`, or ``target`` itself when it is
    a client: functions of the Redis layer take either, so callers pass the store."""
    return target.client if isinstance(target, PriceStore) else target


def is_cluster(client: Any) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, redis.RedisCluster)


@contextlib.contextmanager
def unavailable_as_domain_error(action: str) -> Iterator[None]:
    """Turn redis-py connection failures into :class:`StoreUnavailable`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis unavailable while {action}: {exc}") from exc


class SkuMeta(NamedTuple):
    """Catalog entry of a SKU as the service serves it before any surface exists."""

    sku: str
    list_price: float
    currency: str
    markets: tuple[str, ...]
    drop_id: str = ""
    name: str = ""


class SurfaceRecord(NamedTuple):
    """One price surface of one SKU in one market (the publish format).

    ``price[n, t]`` is the price served with ``n`` units left in period ``t``, where
    period ``t`` starts at ``period_start + t * period_seconds``. Guardrails are
    already applied; ``guardrail_codes[n, t]`` says which one bound the cell
    (``0`` none; the codes of :mod:`pricing.guardrails`).
    """

    price: npt.NDArray[np.float64]
    period_start: datetime
    period_seconds: int
    guardrail_codes: npt.NDArray[np.int8] | None = None
    currency: str = "USD"
    elasticity: Mapping[str, float] | None = None
    explain: Mapping[str, Any] | None = None

    def price_at(self, units_left: int, now: datetime) -> float:
        """The cell served with ``units_left`` units at time ``now`` (clamped,
        :func:`service.store.cells.cell`)."""
        rows, cols = self.price.shape
        grid = CellGrid(rows, cols, epoch_ms(self.period_start), self.period_seconds * 1000)
        return float(self.price[cell(units_left, epoch_ms(now), grid)])


class EventRecord(NamedTuple):
    """One event for one SKU, ready for the event script.

    ``kind`` is the inventory effect: ``sale`` decrements (refused when fewer
    units are left), ``return``/``restock`` increment, ``signal`` (announcement,
    claim, listing) only appends to the stream. ``fields`` are appended to the
    stream entry verbatim.
    """

    event_id: str
    kind: EventKind
    sku: str
    market: str
    quantity: int
    fields: Mapping[str, str]
    quoted_price: float | None = None
    list_price: float | None = None


class EventOutcome(NamedTuple):
    """What happened to one event (``status`` ``duplicate`` repeats ``first_status``)."""

    event_id: str
    sku: str
    market: str
    status: str
    first_status: str
    unit_price: float | None
    units_left: int | None
    stream_id: str | None
    version: str | None
    returnable: int | None = None
    """For ``return_exceeds_sales``: the units sold net of returns a return may take back."""


class StreamEvent(NamedTuple):
    """One entry read back from a SKU's event stream."""

    stream: str
    sku: str
    entry_id: str
    fields: Mapping[Any, Any]
    """Field names to values: ``str`` when decoded, else the bytes Redis returned."""


class DeadLetter(NamedTuple):
    """A stream entry a reader could not decode, as kept in the dead-letter stream."""

    id: str
    """Id in the dead-letter stream (what :meth:`PriceStore.drop_dead_letters` takes)."""
    stream: str
    entry_id: str
    """Id of the entry in its source stream."""
    sku: str
    group: str
    """The consumer group that could not decode it (``refit``)."""
    reason: str
    at: str
    """When it was dead-lettered (ISO 8601, UTC)."""
    fields: dict[str, str]
    """The entry's fields as they were."""

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class VersionInfo(NamedTuple):
    """A published surface version as recorded in the registry."""

    version: str
    published_at: datetime
    status: str
    live: bool
    pairs: tuple[tuple[str, str], ...]
    meta: dict[str, Any]


class PublishResult(NamedTuple):
    """Outcome of :meth:`PriceStore.publish_surfaces` or :meth:`PriceStore.rollback`."""

    version: str
    skus: int
    surfaces: int
    evicted: tuple[str, ...]


_DEAD_LETTERS_KEPT = 100_000
"""Approximate entries kept in the dead-letter stream (the counter keeps the total)."""
_EVENTS_PER_CALL = 200
"""Events per script call: bounds how long one call holds Redis (about 2 ms)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_lenient(k): _lenient(v) for k, v in raw.items()}


def _lenient(value: Any) -> str:
    """Text of a stream field; bytes that are not UTF-8 (only ever written by hand) are
    kept readable rather than failing the whole read."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _float_or_none(value: Any) -> float | None:
    text = _text(value) if value is not None else ""
    return float(text) if text else None


def _int_or_none(value: Any) -> int | None:
    text = _text(value) if value is not None else ""
    return int(text) if text else None


class PriceStore:
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
    def record_events(self, events: Sequence[EventRecord]) -> list[EventOutcome]:
        """Apply events atomically one by one (dedupe, price, inventory, stream).

        Events go to Redis in groups (``record_events.lua``: on a cluster one group
        per SKU, on a single node the batch in order, up to 200 events a call), and
        the groups are pipelined: one round trip per node for the whole batch.
        Each event is all-or-nothing; if Redis fails mid-batch
        :class:`StoreUnavailable` is raised and a retry with the same event ids
        applies exactly the events that had not been applied (the rest report
        ``duplicate``).
        """
        if not events:
            return []
        groups: dict[str, list[int]] = {}
        for i, ev in enumerate(events):
            # One hash slot per script call on a cluster: group by SKU. A single node
            # takes the batch in order, in chunks.
            group = ev.sku if self.cluster else ""
            groups.setdefault(group, []).append(i)
        calls: list[tuple[Script, list[str], list[Any]]] = []
        order: list[int] = []
        for members in groups.values():
            for lo in range(0, len(members), _EVENTS_PER_CALL):
                chunk = members[lo : lo + _EVENTS_PER_CALL]
                script_keys: list[str] = []
                args: list[Any] = [self.dedupe_ttl_ms, self.stream_maxlen, keys.UPDATES_CHANNEL]
                for i in chunk:
                    ev = events[i]
                    script_keys += [
                        keys.seen(ev.sku, ev.event_id),
                        keys.inventory(ev.sku, ev.market),
                        keys.events(ev.sku),
                        keys.live(ev.sku),
                        keys.sold(ev.sku, ev.market),
                    ]
                    args += [
                        ev.kind,
                        int(ev.quantity),
                        "" if ev.quoted_price is None else repr(float(ev.quoted_price)),
                        "" if ev.list_price is None else repr(float(ev.list_price)),
                        ev.market,
                        keys.surface_prefix(ev.sku),
                        ev.sku,
                        len(ev.fields),
                    ]
                    for name, value in ev.fields.items():
                        args += [name, value]
                calls.append((self._record_events, script_keys, args))
                order += chunk
        with unavailable_as_domain_error("recording events"):
            grouped = self._run_scripts(calls)
        replies: list[Any] = [None] * len(events)
        for i, reply in zip(order, (r for g in grouped for r in g), strict=True):
            replies[i] = reply
        out = []
        for ev, reply in zip(events, replies, strict=True):
            status, first, price, units, stream_id, version, returnable = (_text(x) for x in reply)
            out.append(
                EventOutcome(
                    event_id=ev.event_id,
                    sku=ev.sku,
                    market=ev.market,
                    status=status,
                    first_status=first,
                    unit_price=_float_or_none(price),
                    units_left=_int_or_none(units),
                    stream_id=stream_id or None,
                    version=version or None,
                    returnable=_int_or_none(returnable),
                )
            )
        return out

    def event_streams(self) -> dict[str, str]:
        """``{sku: stream key}`` for every SKU in the index."""
        return {sku: keys.events(sku) for sku in self.skus()}

    def ensure_group(
        self, group: str, *, start: str = "0", skus: Iterable[str] | None = None
    ) -> None:
        """Create consumer group ``group`` on every SKU stream (idempotent, pipelined).

        Args:
            skus: only these SKUs' streams (default: every SKU in the index).
        """
        names = list(skus) if skus is not None else self.skus()
        with unavailable_as_domain_error(f"creating consumer group {group}"):
            pipe = self.client.pipeline(transaction=False)
            for sku in names:
                pipe.xgroup_create(keys.events(sku), group, id=start, mkstream=True)
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    raise reply

    def read_events(
        self,
        group: str,
        consumer: str,
        *,
        count: int = 1000,
        skus: Iterable[str] | None = None,
        start: str = ">",
        decode: bool = True,
    ) -> list[StreamEvent]:
        """Entries for ``consumer`` of ``group`` from every SKU stream (no blocking).

        Streams are read with one pipelined ``XREADGROUP`` per pass, ``count`` entries a
        stream, until every stream is drained. Call :meth:`ensure_group` first (new SKUs
        need it too). Entries stay pending until :meth:`ack`.

        Args:
            start: ``">"`` for entries never delivered, ``"0"`` for this consumer's
                pending ones (what a crashed reader had read but not acknowledged).
            decode: decode field names and values to ``str``; ``False`` leaves the bytes
                Redis returned (for column-wise decoding of large reads).
        """
        names = list(skus) if skus is not None else self.skus()
        out: list[StreamEvent] = []
        cursors = dict.fromkeys(names, start)
        with unavailable_as_domain_error(f"reading events for group {group}"):
            while cursors:
                pipe = self.client.pipeline(transaction=False)
                batch = list(cursors)
                for sku in batch:
                    pipe.xreadgroup(group, consumer, {keys.events(sku): cursors[sku]}, count=count)
                replies = pipe.execute(raise_on_error=False)
                cursors = {}
                for sku, reply in zip(batch, replies, strict=True):
                    if isinstance(reply, redis.ResponseError) and "NOGROUP" in str(reply):
                        continue
                    if isinstance(reply, Exception):
                        raise reply
                    for stream, entries in reply or []:
                        name = _text(stream)
                        out.extend(
                            StreamEvent(name, sku, _text(i), _decode_hash(f) if decode else f)
                            for i, f in entries
                        )
                        if len(entries) >= count:
                            # ">" continues with the next new ones; an id after the last.
                            cursors[sku] = start if start == ">" else _text(entries[-1][0])
        return out

    def ack(self, group: str, entries: Iterable[StreamEvent | Any]) -> int:
        """Acknowledge read entries (anything with ``stream`` and ``entry_id``), one
        pipelined ``XACK`` per stream; returns how many were pending."""
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.entry_id)
        if not by_stream:
            return 0
        with unavailable_as_domain_error(f"acknowledging events of group {group}"):
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in by_stream.items():
                pipe.xack(stream, group, *ids)
            return sum(int(n) for n in pipe.execute())

    # ------------------------------------------------------------ dead letters
    def dead_letter(self, group: str, poisoned: Sequence[tuple[StreamEvent, str]]) -> int:
        """Move entries ``group`` cannot decode to the dead-letter stream, then ack them.

        Each goes to ``dp:{deadletter}:events`` with its source stream and entry id, the
        SKU, the group, the reason and its fields (JSON, bytes decoded leniently), and
        the lifetime counter ``dp:{deadletter}:total`` moves with it (one MULTI on a
        single node, one pipeline to the ``{deadletter}`` slot on a cluster); only
        then is the source entry acknowledged, so a crash in between dead-letters it
        again rather than losing it.

        Args:
            group: the consumer group that read the entries (``refit``).
            poisoned: ``(entry, reason)`` pairs (see :func:`service.codec.split_poisoned`).

        Returns:
            How many entries were dead-lettered.
        """
        if not poisoned:
            return 0
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with unavailable_as_domain_error("writing dead letters"):
            pipe = self.client.pipeline(transaction=not self.cluster)
            for entry, reason in poisoned:
                body = {_lenient(k): _lenient(v) for k, v in entry.fields.items()}
                pipe.xadd(
                    keys.dead_letters(),
                    {
                        "stream": entry.stream,
                        "entry_id": entry.entry_id,
                        "sku": entry.sku,
                        "group": group,
                        "reason": reason,
                        "at": at,
                        "fields": json.dumps(body, sort_keys=True),
                    },
                    maxlen=_DEAD_LETTERS_KEPT,
                    approximate=True,
                )
            pipe.incrby(keys.dead_letter_total(), len(poisoned))
            pipe.execute()
        self.ack(group, (entry for entry, _ in poisoned))
        return len(poisoned)

    def dead_letters(self, *, count: int = 100, after: str | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first: up to ``count`` with an id after ``after``."""
        start = "-" if after is None else f"({after}"
        with unavailable_as_domain_error("reading dead letters"):
            entries = self.client.xrange(keys.dead_letters(), min=start, max="+", count=count)
        out = []
        for entry_id, raw in entries:
            f = {_lenient(k): _lenient(v) for k, v in raw.items()}
            try:
                fields = json.loads(f.get("fields", "{}"))
            except ValueError:
                fields = {}
            out.append(
                DeadLetter(
                    id=_text(entry_id),
                    stream=f.get("stream", ""),
                    entry_id=f.get("entry_id", ""),
                    sku=f.get("sku", ""),
                    group=f.get("group", ""),
                    reason=f.get("reason", ""),
                    at=f.get("at", ""),
                    fields=fields if isinstance(fields, dict) else {},
                )
            )
        return out

    def drop_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Delete the dead letters with these ids (every one when ``ids`` is ``None``);
        returns how many were deleted. The lifetime counter is left as it is."""
        with unavailable_as_domain_error("dropping dead letters"):
            if ids is None:
                n = int(self.client.xlen(keys.dead_letters()))
                self.client.delete(keys.dead_letters())
                return n
            return int(self.client.xdel(keys.dead_letters(), *ids)) if ids else 0

    def dead_letter_counts(self) -> tuple[int, int]:
        """``(kept now, ever dead-lettered)``."""
        with unavailable_as_domain_error("counting dead letters"):
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(keys.dead_letters())
            pipe.get(keys.dead_letter_total())
            kept, total = pipe.execute()
        return int(kept), int(_text(total)) if total is not None else 0

    def recent_events(
        self, sku: str, *, since: datetime | None = None, limit: int = 50_000
    ) -> list[StreamEvent]:
        """The SKU's stream entries appended at or after ``since`` (oldest first)."""
        # Stream ids are ms since the epoch: an earlier ``since`` means from the start.
        since_ms = None if since is None else int(since.timestamp() * 1000)
        start = "-" if since_ms is None or since_ms <= 0 else f"{since_ms}-0"
        stream = keys.events(sku)
        with unavailable_as_domain_error(f"reading events of {sku}"):
            entries = self.client.xrevrange(stream, max="+", min=start, count=limit)
        return [StreamEvent(stream, sku, _text(i), _decode_hash(f)) for i, f in reversed(entries)]

    # ---------------------------------------------------------------- surfaces
    def publish_surfaces(
        self,
        version: str,
        surfaces: Mapping[tuple[str, str], SurfaceRecord],
        meta: Mapping[str, Any] | None = None,
        *,
        keep: int | None = None,
        fence: tuple[str, int | str] | None = None,
    ) -> PublishResult:
        """Write a new surface version, switch it live SKU by SKU, keep the last ``keep``.

        The version is first *registered*: one script numbers it from the publish
        counter and creates its record, refusing when the version id is taken or,
        with ``fence``, when the lock no longer holds the token. Only then are the
        surfaces written and switched; every switch carries that number and is refused
        for a SKU whose pointers a later publish or rollback already moved.

        Args:
            version: new version id (letters, digits, ``._:-``; unused so far).
            surfaces: ``{(sku, market): SurfaceRecord}``.
            meta: JSON-serialisable facts about the version (fit summary, author).
            keep: versions kept for rollback (default ``keep_versions``, at least 2).
            fence: ``(lock key, token)``: publish only while the lock key (in the
                ``{_refit}`` hash slot, e.g. ``keys.refit_lock()``) holds a value
                whose first word is ``token`` (``"<token> <owner>"``).

        Returns:
            The version, counts and the versions evicted.

        Raises:
            ValueError: a bad version id, a reused version, a fence lock outside the
                registry's hash slot or a malformed surface (the message names the
                SKU and market).
            FenceLost: the lock no longer holds the token; nothing was written.
            PublishSuperseded: a later publish or rollback moved the live pointers
                while this one ran; no pointer went back to this version.
            StoreUnavailable: Redis failed; the live version is unchanged for every
                SKU not yet switched (publish again under a new version id).
        """
        _check_version_id(version)
        if not surfaces:
            raise ValueError("publish_surfaces needs at least one (sku, market) surface, got none")
        keep = max(2, keep or self.keep_versions)
        encoded = {pair: _encode_surface(pair, rec, version) for pair, rec in surfaces.items()}
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        record = {
            "status": "writing",
            "created_ms": now_ms,
            "meta": json.dumps(dict(meta or {}), default=str),
            "pairs": json.dumps(sorted([s, m] for s, m in surfaces)),
        }
        with unavailable_as_domain_error(f"publishing surface version {version}"):
            seq = self._register("publish", version, fence, record)
            pipe = self.client.pipeline(transaction=False)
            for (sku, market), (header, cells, codes) in encoded.items():
                pipe.hset(keys.surface(sku, version, market), mapping=header)
                pipe.set(keys.surface_prices(sku, version, market), cells)
                if codes is not None:
                    pipe.set(keys.surface_guardrails(sku, version, market), codes)
            pipe.execute()
            by_sku = _group_by_sku(surfaces)
            superseded = self._swap(version, seq, by_sku)
            moved = self._set_live(version, seq, {"status": "live"})
            if not moved:
                self.client.hset(keys.version_record(version), mapping={"status": "superseded"})
            self.client.zadd(keys.versions(), {version: now_ms})
            evicted = self._evict_beyond(keep)
        if superseded or not moved:
            raise PublishSuperseded(
                f"surface version {version} (publish #{seq}) was overtaken by a later publish "
                f"or rollback: {len(superseded)} of {len(by_sku)} SKU(s) kept the newer "
                f"surfaces (e.g. {superseded[:3]}), live version is {self.live_version()!r}"
            )
        return PublishResult(version, len(by_sku), len(surfaces), evicted)

    def rollback(
        self, to_version: str | None = None, *, fence: tuple[str, int | str] | None = None
    ) -> PublishResult:
        """Serve an older kept version again (default: the one before the live one).

        A rollback is numbered like a publish, so it wins over every publish registered
        before it and loses to every one registered after it.

        Raises:
            ValueError: no such kept version, or nothing to roll back to.
            FenceLost: ``fence`` given and the lock no longer holds its token.
            PublishSuperseded: a later publish moved the pointers during the rollback.
            StoreUnavailable: Redis failed (roll back again; the switch is idempotent).
        """
        versions = self.list_versions()
        live = self.live_version()
        if to_version is None:
            older = [
                v
                for v in versions
                if v.version != live and v.status not in {"evicted", "superseded", "writing"}
            ]
            if live is not None:
                live_info = next((v for v in versions if v.version == live), None)
                if live_info is not None:
                    older = [v for v in older if v.published_at <= live_info.published_at]
            if not older:
                raise ValueError(
                    f"nothing to roll back to: kept versions are "
                    f"{[v.version for v in versions]}, live is {live!r}"
                )
            target = older[0]
        else:
            found = next((v for v in versions if v.version == to_version), None)
            if found is None:
                raise ValueError(
                    f"unknown or evicted surface version {to_version!r}; kept versions are "
                    f"{[v.version for v in versions]}"
                )
            target = found
        by_sku: dict[str, list[str]] = {}
        for sku, market in target.pairs:
            by_sku.setdefault(sku, []).append(market)
        with unavailable_as_domain_error(f"rolling back to {target.version}"):
            seq = self._register("rollback", target.version, fence, {})
            superseded = self._swap(target.version, seq, by_sku)
            moved = self._set_live(
                target.version,
                seq,
                {"status": "live", "rolled_back_ms": int(datetime.now(UTC).timestamp() * 1000)},
            )
        if superseded or not moved:
            raise PublishSuperseded(
                f"rollback to {target.version} (#{seq}) was overtaken by a later publish: "
                f"{len(superseded)} SKU(s) kept the newer surfaces, live version is "
                f"{self.live_version()!r}"
            )
        return PublishResult(target.version, len(by_sku), len(target.pairs), ())

    def _register(
        self,
        mode: Literal["publish", "rollback"],
        version: str,
        fence: tuple[str, int | str] | None,
        record: Mapping[str, Any],
    ) -> int:
        """Run ``register_version.lua``: the publish number, behind the fence if any."""
        script_keys = [keys.publish_seq(), keys.version_record(version)]
        token = ""
        if fence is not None:
            lock_key, fence_token = fence
            if key_slot(lock_key.encode()) != key_slot(keys.publish_seq().encode()):
                raise ValueError(
                    f"fence lock key must share the version registry's hash slot "
                    f"({keys.REFIT_TAG}:...), got {lock_key!r}"
                )
            script_keys.append(lock_key)
            token = str(fence_token).split(" ", 1)[0]
        args: list[Any] = [mode, token]
        for name, value in record.items():
            args += [name, value]
        reply = [_text(x) for x in self._register_version(keys=script_keys, args=args)]
        if reply[0] == "ok":
            return int(reply[1])
        if reply[0] == "fence":
            lock_key = script_keys[2]
            raise FenceLost(
                f"lock {lock_key} no longer holds token {token} (it holds "
                f"{reply[1] or 'nothing'!r}); surface version {version} was not published"
            )
        if reply[0] == "exists":
            raise ValueError(f"surface version {version!r} exists already: use a new id")
        raise ValueError(f"surface version {version!r} has no record to roll back to")

    def _run_scripts(self, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        """Run scripts pipelined: one round trip per node, replies in call order.

        A cluster pipeline cannot carry EVALSHA, so on a cluster the calls are
        grouped by the node owning their first key (all keys of a call share one
        slot) and each group is pipelined on that node's own connection.
        """
        if not self.cluster:
            pipe = self.client.pipeline(transaction=False)
            for script, script_keys, args in calls:
                script(keys=script_keys, args=args, client=pipe)
            return list(pipe.execute())
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, (script, script_keys, args) in enumerate(calls):
            node = self.client.get_node_from_key(script_keys[0])
            if node.name not in groups:
                conn = self.client.get_redis_connection(node)
                groups[node.name] = (conn.pipeline(transaction=False), [])
            pipe, index = groups[node.name]
            script(keys=script_keys, args=args, client=pipe)
            index.append(i)
        replies: list[Any] = [None] * len(calls)
        for pipe, index in groups.values():
            for i, reply in zip(index, pipe.execute(), strict=True):
                replies[i] = reply
        return replies

    def _swap(self, version: str, seq: int, by_sku: Mapping[str, Sequence[str]]) -> list[str]:
        """Switch each SKU's markets to ``version``; returns the SKUs a later move kept."""
        calls: list[tuple[Script, list[str], list[Any]]] = []
        for sku, markets in by_sku.items():
            args: list[Any] = [keys.surface_prefix(sku), keys.UPDATES_CHANNEL, sku, seq]
            for market in markets:
                args += [market, version]
            calls.append((self._swap_live, [keys.live(sku), keys.live_seq(sku)], args))
        replies = self._run_scripts(calls)
        return [sku for sku, reply in zip(by_sku, replies, strict=True) if int(reply) < 0]

    def _set_live(self, version: str, seq: int, fields: Mapping[str, Any]) -> bool:
        """Point ``live_version`` at ``version`` unless a later publish already moved it."""
        args: list[Any] = [version, seq]
        for name, value in fields.items():
            args += [name, value]
        moved = self._set_live_version(
            keys=[keys.live_version(), keys.live_version_seq(), keys.version_record(version)],
            args=args,
        )
        return bool(moved)

    def _evict_beyond(self, keep: int) -> tuple[str, ...]:
        ordered = [_text(v) for v in self.client.zrevrange(keys.versions(), 0, -1)]
        live = self.client.get(keys.live_version())
        live_name = _text(live) if live is not None else None
        evicted = tuple(v for v in ordered[keep:] if v != live_name)
        for old in evicted:
            record = _decode_hash(self.client.hgetall(keys.version_record(old)))
            self._run_scripts(
                [
                    (
                        self._evict,
                        [
                            keys.live(sku),
                            keys.surface(sku, old, market),
                            keys.surface_prices(sku, old, market),
                            keys.surface_guardrails(sku, old, market),
                        ],
                        [market, old],
                    )
                    for sku, market in json.loads(record.get("pairs", "[]"))
                ]
            )
            self.client.zrem(keys.versions(), old)
            self.client.hset(keys.version_record(old), mapping={"status": "evicted"})
        return evicted

    def live_version(self) -> str | None:
        """The version most recently published or rolled back to, if any."""
        with unavailable_as_domain_error("reading the live version"):
            value = self.client.get(keys.live_version())
        return _text(value) if value is not None else None

    def list_versions(self) -> list[VersionInfo]:
        """Kept versions, newest first."""
        with unavailable_as_domain_error("listing surface versions"):
            scored = self.client.zrevrange(keys.versions(), 0, -1, withscores=True)
            live = self.client.get(keys.live_version())
            pipe = self.client.pipeline(transaction=False)
            for name, _ in scored:
                pipe.hgetall(keys.version_record(_text(name)))
            records = pipe.execute()
        live_name = _text(live) if live is not None else None
        out = []
        for (name, score), raw in zip(scored, records, strict=True):
            h = _decode_hash(raw)
            is_live = _text(name) == live_name
            status = h.get("status", "unknown")
            if status == "live" and not is_live:
                status = "replaced"  # was live; a later publish or rollback took over
            out.append(
                VersionInfo(
                    version=_text(name),
                    published_at=datetime.fromtimestamp(score / 1000, UTC),
                    status=status,
                    live=is_live,
                    pairs=tuple((s, m) for s, m in json.loads(h.get("pairs", "[]"))),
                    meta=json.loads(h.get("meta", "{}")),
                )
            )
        return out

    def live_surfaces(self, sku: str) -> dict[str, tuple[str, SurfaceRecord]]:
        """``{market: (version, surface)}`` of every market of ``sku`` with a live surface."""
        with unavailable_as_domain_error(f"reading live surfaces of {sku}"):
            pointers = _decode_hash(self.client.hgetall(keys.live(sku)))
            if not pointers:
                return {}
            pipe = self.client.pipeline(transaction=False)
            for market, version in pointers.items():
                pipe.hgetall(keys.surface(sku, version, market))
                pipe.get(keys.surface_prices(sku, version, market))
                pipe.get(keys.surface_guardrails(sku, version, market))
            raw = pipe.execute()
        out = {}
        for i, (market, version) in enumerate(pointers.items()):
            header, cells, codes = raw[3 * i : 3 * i + 3]
            if header and cells is not None:
                out[market] = (version, _decode_surface(_decode_hash(header), cells, codes))
        return out

    def live_pointers(self, skus: Sequence[str]) -> dict[str, dict[str, str]]:
        """``{sku: {market: live version}}`` for ``skus`` in one pipelined pass."""
        with unavailable_as_domain_error("reading live surface pointers"):
            pipe = self.client.pipeline(transaction=False)
            for sku in skus:
                pipe.hgetall(keys.live(sku))
            rows = pipe.execute()
        return {sku: _decode_hash(raw) for sku, raw in zip(skus, rows, strict=True)}

    def get_surface(
        self, sku: str, market: str, version: str | None = None
    ) -> tuple[str, SurfaceRecord] | None:
        """One surface (default: the live one) with its version, or ``None``."""
        with unavailable_as_domain_error(f"reading the surface of {sku} in {market}"):
            if version is None:
                live = self.client.hget(keys.live(sku), market)
                if live is None:
                    return None
                version = _text(live)
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(keys.surface(sku, version, market))
            pipe.get(keys.surface_prices(sku, version, market))
            pipe.get(keys.surface_guardrails(sku, version, market))
            header, cells, codes = pipe.execute()
        if not header or cells is None:
            return None
        return version, _decode_surface(_decode_hash(header), cells, codes)

    def live_prices(
        self,
        pairs: Sequence[tuple[str, str]],
        units_left: Mapping[tuple[str, str], int],
        now: datetime,
    ) -> dict[tuple[str, str], float]:
        """The price each pair's live surface serves at ``now`` with its units left
        (:func:`service.store.cells.cell`; a pair not in ``units_left`` reads the last
        row), in two pipelined passes. Pairs without a live surface are left out."""
        with unavailable_as_domain_error("reading live prices"):
            pipe = self.client.pipeline(transaction=False)
            for sku, market in pairs:
                pipe.hget(keys.live(sku), market)
            versions = pipe.execute()
            have = [(p, _text(v)) for p, v in zip(pairs, versions, strict=True) if v is not None]
            pipe = self.client.pipeline(transaction=False)
            for (sku, market), v in have:
                pipe.hmget(
                    keys.surface(sku, v, market), "rows", "cols", "period_start_ms", "period_ms"
                )
                pipe.get(keys.surface_prices(sku, v, market))
            raw = pipe.execute()
        out: dict[tuple[str, str], float] = {}
        now_ms = epoch_ms(now)
        for idx, (pair, _) in enumerate(have):
            header, cells = raw[2 * idx], raw[2 * idx + 1]
            if header[0] is None or cells is None:
                continue
            grid = CellGrid(*(int(_text(x)) for x in header))
            n, t = cell(units_left.get(pair, grid.rows - 1), now_ms, grid)
            out[pair] = float(
                np.frombuffer(cells, dtype="<f8", count=1, offset=8 * (n * grid.cols + t))[0]
            )
        return out

    # ------------------------------------------------------------------ quotes
    def quote_secret(self) -> bytes:
        """The shared random key signing quote ids (created on first use)."""
        with unavailable_as_domain_error("reading the quote signing key"):
            self.client.set(keys.quote_secret(), secrets.token_hex(32), nx=True)
            value = self.client.get(keys.quote_secret())
        return value if isinstance(value, bytes) else str(value).encode()


def _meta_fields(meta: SkuMeta) -> dict[str, str]:
    return {
        "list_price": repr(float(meta.list_price)),
        "currency": meta.currency,
        "markets": json.dumps(list(meta.markets)),
        "drop_id": meta.drop_id,
        "name": meta.name,
    }


def _check_version_id(version: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", version or ""):
        raise ValueError(
            f"version id must be 1-128 letters, digits or '._:-' starting with a letter or "
            f"digit, got {version!r}"
        )


def _group_by_sku(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sku, market in pairs:
        out.setdefault(sku, []).append(market)
    return out


def _encode_surface(
    pair: tuple[str, str], rec: SurfaceRecord, version: str
) -> tuple[dict[str, Any], bytes, bytes | None]:
    sku, market = pair
    keys.sku_tag(sku)
    price = np.asarray(rec.price, dtype="<f8")
    where = f"surface {version} of {sku} in {market}"
    if price.ndim != 2 or price.shape[0] < 1 or price.shape[1] < 1:
        raise ValueError(f"{where}: price must be a 2-D [N+1, T] array, got shape {price.shape}")
    if not np.all(np.isfinite(price)) or np.any(price <= 0):
        raise ValueError(f"{where}: prices must be finite and > 0, got min {np.nanmin(price)}")
    if rec.period_start.tzinfo is None:
        raise ValueError(f"{where}: period_start must carry a time zone, got {rec.period_start}")
    if rec.period_seconds <= 0:
        raise ValueError(f"{where}: period_seconds must be > 0, got {rec.period_seconds}")
    codes: bytes | None = None
    if rec.guardrail_codes is not None:
        g = np.asarray(rec.guardrail_codes)
        if g.shape != price.shape:
            raise ValueError(
                f"{where}: guardrail_codes shape {g.shape} must equal price shape {price.shape}"
            )
        codes = np.ascontiguousarray(g, dtype=np.int8).tobytes()
    header = {
        "rows": price.shape[0],
        "cols": price.shape[1],
        "period_start_ms": int(rec.period_start.timestamp() * 1000),
        "period_ms": int(rec.period_seconds * 1000),
        "currency": rec.currency,
        "version": version,
        "elasticity": json.dumps(dict(rec.elasticity or {})),
        "explain": json.dumps(dict(rec.explain or {}), default=str),
    }
    return header, np.ascontiguousarray(price).tobytes(), codes


def _decode_surface(header: dict[str, str], cells: bytes, codes: bytes | None) -> SurfaceRecord:
    rows, cols = int(header["rows"]), int(header["cols"])
    price = np.frombuffer(cells, dtype="<f8").reshape(rows, cols)
    guard = np.frombuffer(codes, dtype=np.int8).reshape(rows, cols) if codes is not None else None
    return SurfaceRecord(
        price=price,
        period_start=datetime.fromtimestamp(int(header["period_start_ms"]) / 1000, UTC),
        period_seconds=int(header["period_ms"]) // 1000,
        guardrail_codes=guard,
        currency=header.get("currency", "USD"),
        elasticity=json.loads(header.get("elasticity", "{}")),
        explain=json.loads(header.get("explain", "{}")),
    )
