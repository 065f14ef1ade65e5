"""Served-price look-up counts in Redis (:mod:`service.served` keeps them in process).

Hash ``dp:{<sku>}:served:<market>`` (:func:`service.keys.served`), field
``<hour ISO>|<arm>|<price>|<probability>`` -> look-ups; it expires 90 days after the
last write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service import keys
from service.store.client import _text
from service.store.prices import client_of

__all__ = ["SERVED_TTL_S", "add_lookup_counts", "lookup_counts"]

SERVED_TTL_S = 90 * 24 * 3600
"""How long a SKU-market's look-up counts are kept after the last write."""


def add_lookup_counts(store: Any, counts: Mapping[tuple[str, str, str], int]) -> None:
    """Add ``(sku, market, field) -> look-ups`` to the counts, in one pipeline.

    Args:
        store: the :class:`~service.store.PriceStore` (or its redis-py client).
        counts: look-ups to add per SKU, market and field.

    Raises:
        redis.RedisError, OSError: Redis is unreachable (nothing is known to be written).
    """
    client = client_of(store)
    pipe = client.pipeline(transaction=False)
    touched: set[str] = set()
    for (sku, market, name), n in counts.items():
        key = keys.served(sku, market)
        pipe.hincrby(key, name, n)
        touched.add(key)
    for key in touched:
        pipe.expire(key, SERVED_TTL_S)
    pipe.execute()


def lookup_counts(
    store: Any, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    """Every field's look-ups of each ``(sku, market)``, in one pipeline."""
    pairs = list(pairs)
    pipe = client_of(store).pipeline(transaction=False)
    for sku, market in pairs:
        pipe.hgetall(keys.served(sku, market))
    return {
        pair: {_text(k): int(v) for k, v in (raw or {}).items()}
        for pair, raw in zip(pairs, pipe.execute(), strict=True)
    }
