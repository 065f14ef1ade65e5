"""Customer pseudonyms: a sale's ``customer_id`` is replaced by a keyed hash as it arrives.

A till may send a customer reference with a sale (a loyalty number, a hashed e-mail) so
the experiment report can follow a drop's new customers for 30 days
(:mod:`pricing.customers`). The reference itself is never stored: the store's one write
path for events (:meth:`service.store.PriceStore.record_events`, whoever calls it) first
replaces it, in :func:`pseudonymise_records`, with

.. math:: \\text{cust\\_} \\Vert \\operatorname{hex}\\big(\\operatorname{HMAC-SHA256}(k, \\text{id})\\big)_{[:32]}

with ``k = SHA-256("dropprice-customer\\0" ‖ secret)``. The secret is random, shared by every
worker through Redis (``dp:secret:customer``, made once with ``SET NX`` like the quote
key), so one customer has one pseudonym everywhere; without the secret a pseudonym cannot
be recomputed from a guessed reference (a plain hash of a loyalty number could). The
stream, the re-fit's panel, the logs and every export only ever see the pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from service import keys

if TYPE_CHECKING:
    from service.store.records import EventRecord

__all__ = [
    "CUSTOMER_FIELD",
    "PSEUDONYM_PREFIX",
    "CustomerPseudonyms",
    "pseudonymise_records",
    "pseudonyms_for",
]

CUSTOMER_FIELD = "customer_id"
"""The event field of a sale's customer reference; in the stream always its pseudonym."""

PSEUDONYM_PREFIX = "cust_"
"""Every stored customer reference starts with this (a raw one never does)."""
_DOMAIN = b"dropprice-customer\x00"
_LOCK = threading.Lock()
_CACHE: weakref.WeakKeyDictionary[Any, CustomerPseudonyms] = weakref.WeakKeyDictionary()


class CustomerPseudonyms:
    """The keyed hash of customer references under one server secret."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the customer key needs a non-empty secret")
        self._key = hashlib.sha256(_DOMAIN + secret).digest()

    def pseudonym(self, customer_id: str) -> str:
        """``cust_`` and 32 hex digits: the same reference always maps to the same value.

        Example:
            >>> p = CustomerPseudonyms(b"server-secret")
            >>> p.pseudonym("loyalty-42") == p.pseudonym("loyalty-42"), p.pseudonym("x")[:5]
            (True, 'cust_')
        """
        digest = hmac.new(self._key, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:32]


def pseudonyms_for(client: Any) -> CustomerPseudonyms:
    """The pseudonyms of the service whose Redis is ``client`` (the shared secret is made
    on first use with ``SET NX``, then read once per process and client)."""
    with _LOCK:
        found = _CACHE.get(client)
        if found is not None:
            return found
        client.set(keys.customer_secret(), secrets.token_hex(32), nx=True)
        value = client.get(keys.customer_secret())
        secret = value if isinstance(value, bytes) else str(value).encode()
        made = CustomerPseudonyms(secret)
        _CACHE[client] = made
        return made


def pseudonymise_records(client: Any, records: Sequence[EventRecord]) -> list[EventRecord]:
    """``records`` with each ``customer_id`` field replaced by its pseudonym.

    Records without one pass unchanged (and Redis is not asked for the key).
    """
    if not any(CUSTOMER_FIELD in r.fields for r in records):
        return list(records)
    names = pseudonyms_for(client)
    out = []
    for record in records:
        raw = record.fields.get(CUSTOMER_FIELD)
        if raw is None:
            out.append(record)
            continue
        fields = {**record.fields, CUSTOMER_FIELD: names.pseudonym(raw)}
        out.append(record._replace(fields=fields))
    return out
