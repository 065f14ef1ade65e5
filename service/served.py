"""The record of served prices: look-ups per SKU, market, hour, price, arm and probability.

Every price a terminal is served is counted in the process (one dictionary increment
under a lock, under a microsecond, so the price read stays fast) and the counts are added to Redis by
the sync thread on each resync (:meth:`ServedPriceLog.flush`, one ``HINCRBY`` per
distinct cell in one pipeline), within one resync interval of the read. Drop experiments read them back
(:func:`load_lookups`) for conversion (units sold per look-up) and, because each cell
carries the experiment arm and the probability with which that price was served, for
off-policy evaluation later (Li et al. 2011).

Redis layout: hash ``dp:{<sku>}:served:<market>`` (:func:`service.keys.served`, written
and read by :mod:`service.store.served`), field ``<hour ISO>|<arm>|<price>|<probability>``
-> look-ups; it expires 90 days after the last flush. The probability is 1 while prices are read off a published surface: the
served price is then a deterministic function of (units left, period).

References:
    Li, L., Chu, W., Langford, J. and Wang, X. (2011). Unbiased offline evaluation of
    contextual-bandit-based news article recommendation algorithms. *WSDM*, 297–306.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import redis

from service.store.served import add_lookup_counts, lookup_counts

__all__ = ["LOOKUP_COLUMNS", "ServedPriceLog", "load_lookups"]

log = logging.getLogger("dropprice.served")

LOOKUP_COLUMNS = ("hour", "sku", "market", "lookups", "price", "arm", "propensity")
_Cell = tuple[str, str, int, float, str, float]  # sku, market, hour, price, arm, propensity


class ServedPriceLog:
    """Served prices, held in the process until flushed to Redis.

    :meth:`record` adds one to its cell's count under a lock (well under a
    microsecond); :meth:`flush` swaps the counts out under the same lock, so no served
    price is lost or counted twice whatever the threads do, and a flush costs one step
    per distinct cell, not per read (it never holds the interpreter for long).
    """

    def __init__(self) -> None:
        self._active: dict[_Cell, int] = {}
        self._unsent: dict[_Cell, int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def record(
        self, sku: str, market: str, arm: str, price: float, now: float, propensity: float = 1.0
    ) -> None:
        """Count one served price (``now`` in epoch seconds)."""
        self.count((sku, market, int(now // 3600), price, arm, propensity))

    def count(self, cell: _Cell) -> None:
        """Count one served price of a cell ``(sku, market, hour, price, arm, propensity)``
        (``hour``: epoch seconds // 3600): a reader that serves one cell many times keeps
        the tuple and skips making it per read."""
        with self._lock:
            active = self._active
            active[cell] = active.get(cell, 0) + 1

    def pending(self) -> int:
        """Served prices counted and not yet written to Redis."""
        return sum(dict(self._active).values()) + sum(self._unsent.values())

    def flush(self, store: Any, *, final: bool = False) -> int:
        """Add the counts to Redis (``store``: the :class:`~service.store.PriceStore` or
        its client); returns how many look-ups were written.

        On a Redis error the counts are kept for the next flush and 0 is returned (a
        price read never depends on this). ``final`` is accepted for call sites that
        flush on shutdown; every flush writes everything recorded so far.
        """
        with self._flush_lock:
            with self._lock:
                ready, self._active = self._active, {}
            counts = self._unsent
            self._unsent = {}
            for cell, n in ready.items():
                counts[cell] = counts.get(cell, 0) + n
            if not counts:
                return 0
            fields: dict[tuple[str, str, str], int] = {}
            for (sku, market, hour, price, arm, prob), n in counts.items():
                name = (sku, market, _field(hour, arm, price, prob))
                fields[name] = fields.get(name, 0) + n
            try:
                add_lookup_counts(store, fields)
            except (redis.RedisError, OSError) as exc:
                self._unsent = counts
                log.warning(
                    "served prices not flushed; kept for the next try", extra={"error": str(exc)}
                )
                return 0
            return sum(counts.values())


def _field(hour: int, arm: str, price: float, propensity: float) -> str:
    iso = datetime.fromtimestamp(hour * 3600, tz=UTC).isoformat().replace("+00:00", "Z")
    return f"{iso}|{arm}|{price!r}|{propensity!r}"


def load_lookups(store: Any, pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """The recorded look-ups of ``(sku, market)`` pairs, one row per cell (``store``: the
    :class:`~service.store.PriceStore` or its client).

    Returns:
        Columns :data:`LOOKUP_COLUMNS` (``hour`` UTC, ``lookups`` int, ``arm`` ``""``
        for markets in no experiment arm).
    """
    rows: list[dict[str, Any]] = []
    for (sku, market), counts in lookup_counts(store, pairs).items():
        for text, value in counts.items():
            hour, arm, price, prob = text.split("|")
            rows.append(
                {
                    "hour": hour,
                    "sku": sku,
                    "market": market,
                    "lookups": int(value),
                    "price": float(price),
                    "arm": arm,
                    "propensity": float(prob),
                }
            )
    frame = pd.DataFrame(rows, columns=list(LOOKUP_COLUMNS))
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True, format="ISO8601")
    return frame
