"""The event streams of the Redis layer: recording events, reading them, dead letters.

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
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import hiredis
import redis
from anyio import to_thread
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from service import keys
from service.store.client import (
    _decode_hash,
    _lenient,
    _text,
    unavailable_as_domain_error,
)
from service.store.pseudonyms import pseudonymise_records
from service.store.records import DeadLetter, EventOutcome, EventRecord, StreamEvent

__all__ = ["EventLog"]

_DEAD_LETTERS_KEPT = 100_000
"""Approximate entries kept in the dead-letter stream (the counter keeps the total)."""
_EVENTS_PER_CALL = 200
"""Events per script call: bounds how long one call holds Redis (about 2 ms)."""


@functools.lru_cache(maxsize=65_536)
def _market_keys(sku: str, market: str) -> tuple[str, str, str, str, str, str]:
    """The event script's keys of a SKU in a market (all but the event's own ``seen``):
    inventory, stream, live, sold, sales and the surface prefix. Kept for the catalog's
    SKU-markets: built once, not six times an event."""
    return (
        keys.inventory(sku, market),
        keys.events(sku),
        keys.live(sku),
        keys.sold(sku, market),
        keys.sales(sku, market),
        keys.surface_prefix(sku),
    )


def _sale_ref(event: EventRecord) -> str:
    """The sale an event's returnable units are kept under: a sale's own ``event_id``;
    for a return, the ``sale_event_id`` it names (``""``: none, the SKU-market cap)."""
    if event.kind == "sale":
        return event.event_id
    if event.kind == "return":
        return str(event.fields.get("sale_event_id") or "")
    return ""


class EventLog:
    """Event streams and dead letters (a part of :class:`~service.store.PriceStore`)."""

    client: Any
    async_client: Any
    """An asyncio client on the same Redis (:func:`~service.store.client.connect_async`),
    or ``None``: :meth:`record_events_async` then runs in a worker thread."""
    cluster: bool
    dedupe_ttl_ms: int
    stream_maxlen: int
    _record_events: Script

    if TYPE_CHECKING:  # provided by the other parts of PriceStore

        def skus(self) -> list[str]: ...

        def _run_scripts(
            self, calls: Sequence[tuple[Script, list[str], list[Any]]]
        ) -> list[Any]: ...

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
        records, calls, order = self._event_calls(events)
        with unavailable_as_domain_error("recording events"):
            grouped = self._run_scripts(calls)
        return _event_outcomes(records, order, grouped)

    async def record_events_async(self, events: Sequence[EventRecord]) -> list[EventOutcome]:
        """:meth:`record_events` for a coroutine: the same scripts in one pipeline, on
        the asyncio client (:attr:`async_client`) when there is one, so the event loop
        is never blocked and no thread is used; without one (a cluster) in a worker
        thread.

        Raises:
            StoreUnavailable: as :meth:`record_events`.
        """
        if not events:
            return []
        if self.async_client is None:
            return await to_thread.run_sync(self.record_events, events)
        records, calls, order = self._event_calls(events)
        with unavailable_as_domain_error("recording events"):
            grouped = await _evalsha_packed_async(self.async_client, calls)
            missing = [i for i, r in enumerate(grouped) if isinstance(r, NoScriptError)]
            if missing:  # a restarted or flushed server: load the script, run those again
                await self.async_client.script_load(self._record_events.script)
                again = await _evalsha_packed_async(self.async_client, [calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    grouped[i] = reply
            for reply in grouped:
                if isinstance(reply, Exception):
                    raise reply
        return _event_outcomes(records, order, grouped)

    def _event_calls(
        self, events: Sequence[EventRecord]
    ) -> tuple[list[EventRecord], list[tuple[Script, list[str], list[Any]]], list[int]]:
        """The script calls of a batch: the records as written (customer references as
        pseudonyms), the calls, and the record index of each call's events in order."""
        # A sale's customer reference is written as its pseudonym only.
        events = pseudonymise_records(self.client, events)
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
                    inv, stream, live, sold, sales, prefix = _market_keys(ev.sku, ev.market)
                    script_keys += [keys.seen(ev.sku, ev.event_id), inv, stream, live, sold, sales]
                    args += [
                        ev.kind,
                        int(ev.quantity),
                        "" if ev.quoted_price is None else repr(float(ev.quoted_price)),
                        "" if ev.list_price is None else repr(float(ev.list_price)),
                        ev.market,
                        prefix,
                        ev.sku,
                        _sale_ref(ev),
                        len(ev.fields),
                    ]
                    for item in ev.fields.items():
                        args += item
                calls.append((self._record_events, script_keys, args))
                order += chunk
        return list(events), calls, order

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


async def _evalsha_packed_async(
    client: Any, calls: Sequence[tuple[Script, list[str], list[Any]]]
) -> list[Any]:
    """The replies of ``EVALSHA`` calls sent in one round trip on an asyncio client (an
    error reply is returned as its exception, in its place).

    Each call is packed by hiredis in one C call: a 100-event batch is some 3,000
    arguments, and redis-py's pipeline encodes each in Python (about 30 us an event,
    the largest part of the route's time). A connection error is retried once on a
    fresh connection, as the client's own policy does (each event is idempotent by its
    ``event_id``, so a replay applies only what had not been applied).
    """
    packed = [
        hiredis.pack_command(("EVALSHA", script.sha, len(script_keys), *script_keys, *args))
        for script, script_keys, args in calls
    ]
    try:
        return await _send_packed(client.connection_pool, packed)
    except redis.ConnectionError:
        return await _send_packed(client.connection_pool, packed)


async def _send_packed(pool: Any, packed: list[bytes]) -> list[Any]:
    """Send packed commands on one pooled connection and read every reply; a connection
    that failed midway is dropped, never handed to the next caller with replies on it."""
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in packed:
            try:
                replies.append(await conn.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)


def _event_outcomes(
    events: Sequence[EventRecord], order: Sequence[int], grouped: Sequence[Any]
) -> list[EventOutcome]:
    """Each record's outcome, in record order, from the replies of its script calls."""
    replies: list[Any] = [None] * len(events)
    for i, reply in zip(order, (r for g in grouped for r in g), strict=True):
        replies[i] = reply
    out = []
    for ev, reply in zip(events, replies, strict=True):
        # Seven strings an event, decoded inline (a hot loop: 100 events a batch).
        status, first, price, units, stream_id, version, returnable = (
            x.decode() if type(x) is bytes else str(x) for x in reply
        )
        out.append(
            EventOutcome(
                ev.event_id,
                ev.sku,
                ev.market,
                status,
                first,
                float(price) if price else None,
                int(units) if units else None,
                stream_id or None,
                version or None,
                int(returnable) if returnable else None,
            )
        )
    return out
