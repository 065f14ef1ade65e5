"""The audit log's stream in Redis, ``dp:audit`` (:func:`service.keys.audit_log`).

What a record holds and how it is validated is :mod:`service.audit`; this module only
appends entries and reads them back in id order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service import keys
from service.store.client import _text
from service.store.prices import client_of

__all__ = ["append_audit_entry", "audit_entries"]


def append_audit_entry(store: Any, fields: Mapping[str, str]) -> str:
    """Append one entry with ``fields`` and return its stream id.

    Args:
        store: the :class:`~service.store.PriceStore` (or its redis-py client).

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    return _text(client_of(store).xadd(keys.audit_log(), dict(fields)))


def audit_entries(store: Any, start: str, count: int) -> list[tuple[str, dict[str, str]]]:
    """Up to ``count`` entries from ``start`` on (an ``XRANGE`` bound: ``-``, an id, or
    ``(id`` for after it), oldest first, as ``(entry id, fields)``."""
    batch = client_of(store).xrange(keys.audit_log(), min=start, max="+", count=count)
    return [(_text(i), {_text(k): _text(v) for k, v in raw.items()}) for i, raw in batch]
