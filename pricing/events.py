"""The event kinds of a drop, in one table: what each one carries and what it means.

Every reader of events derives its view from :data:`EVENT_KINDS`: the intensity
index (:mod:`pricing.intensity`: which kinds it scores, their size, default weight
and half-life), the signal detectors (:mod:`pricing.signals`: every kind they accept,
the stock movements, the stimuli) and the re-fit's exogenous regressor
(``service.refit``: the stimulus parts of the index).

=============  ==========  =====  ========  ======  =========  ================
kind           size field  stock  stimulus  weight  half-life  size ``g(e)``
=============  ==========  =====  ========  ======  =========  ================
sale           quantity    -1     no        0.10    6 h        units
return         quantity    +1     no        --      --         (not indexed)
restock        quantity    +1     no        --      --         (not indexed)
announcement   reach       0      yes       1.0     18 h       ``log1p(reach)``
claim          count       0      yes       0.25    12 h       count (1)
listing        weight      0      yes       0.5     24 h       weight (1)
=============  ==========  =====  ========  ======  =========  ================

A *stimulus* is exogenous: it happens outside the till (a creator's post, a
reservation, a listing change), so it may explain demand without being caused by
the price being fitted. Sales, returns and restocks are the demand and the stock
themselves.

Adding a kind is one row here and its HTTP model in ``service/schemas.py`` (a class
and its place in ``AnyEvent``; ``tests/service/test_event_kinds.py`` walks every kind
through the API, the stream, the codec, the index and the console, from an example of
each). With a weight and half-life it enters the intensity index as a component of its
own; as a stimulus it enters the re-fit's regressor and the detectors' stimulus count.
A kind that moves stock also needs its inventory effect in the event script
(``service/lua/record_events.lua``, ``service.store.records.EventKind``).

Example:
    >>> EVENT_KINDS["announcement"].size_field
    'reach'
    >>> [k.name for k in EVENT_KINDS.values() if k.moves_stock]
    ['sale', 'return', 'restock']
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "EVENT_KINDS",
    "EVENT_TYPES",
    "INDEX_KINDS",
    "STIMULUS_KINDS",
    "STOCK_KINDS",
    "EventKind",
]


class EventKind(NamedTuple):
    """One event kind: its size field, its effect on stock and its place in the index."""

    name: str
    """The ``type`` of the event in the API, the stream and the event tables."""
    size_field: str
    """Column holding the event's size (units sold, reach, claims, listing weight)."""
    stock_sign: int
    """How the event moves stock: -1 takes units (a sale), +1 puts them back (a return,
    a restock), 0 leaves stock alone (a demand signal)."""
    stimulus: bool
    """Exogenous stimulus: happens outside the till, so it may enter the fit as a
    regressor (see the module docstring)."""
    weight: float | None = None
    """Default weight in the intensity index, per unit of size; ``None``: not indexed."""
    half_life_hours: float | None = None
    """Default hours for an event's index contribution to halve; ``None``: not indexed."""
    size_required: bool = True
    """The size column must be present when rows of this kind are indexed."""
    size_default: float = 1.0
    """Size of an event when the table has no ``size_field`` column at all."""
    log_size: bool = False
    """Index ``log1p(size)`` instead of the size (reach spans orders of magnitude)."""

    @property
    def moves_stock(self) -> bool:
        """Whether the event changes the units left."""
        return self.stock_sign != 0

    @property
    def indexed(self) -> bool:
        """Whether the event is a component of the intensity index."""
        return self.weight is not None


_KINDS = (
    EventKind("sale", "quantity", -1, False, weight=0.10, half_life_hours=6.0),
    EventKind("return", "quantity", +1, False),
    EventKind("restock", "quantity", +1, False),
    EventKind(
        "announcement",
        "reach",
        0,
        True,
        weight=1.0,
        half_life_hours=18.0,
        size_default=0.0,
        log_size=True,
    ),
    EventKind("claim", "count", 0, True, weight=0.25, half_life_hours=12.0, size_required=False),
    EventKind("listing", "weight", 0, True, weight=0.5, half_life_hours=24.0, size_required=False),
)


def _check(kinds: tuple[EventKind, ...]) -> None:
    names = [k.name for k in kinds]
    if len(set(names)) != len(names):
        raise ValueError(f"event kinds must be unique, got {names}")
    for k in kinds:
        if k.stock_sign not in (-1, 0, 1):
            raise ValueError(f"{k.name}: stock_sign must be -1, 0 or +1, got {k.stock_sign}")
        if (k.weight is None) != (k.half_life_hours is None):
            raise ValueError(
                f"{k.name}: an indexed kind needs both a weight and a half-life, got "
                f"weight={k.weight} half_life_hours={k.half_life_hours}"
            )
        if k.weight is not None and not (math.isfinite(k.weight) and k.weight >= 0):
            raise ValueError(f"{k.name}: weight must be a finite number >= 0, got {k.weight}")
        hl = k.half_life_hours
        if hl is not None and not (math.isfinite(hl) and hl > 0):
            raise ValueError(f"{k.name}: half_life_hours must be finite and > 0, got {hl}")


_check(_KINDS)

EVENT_KINDS: MappingProxyType[str, EventKind] = MappingProxyType({k.name: k for k in _KINDS})
"""Every event kind by name, in table order (read-only)."""
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_KINDS)
"""Every kind's name, in table order."""
INDEX_KINDS: tuple[str, ...] = tuple(k.name for k in _KINDS if k.indexed)
"""Kinds the intensity index scores, in the order of its component columns."""
STIMULUS_KINDS: tuple[str, ...] = tuple(k.name for k in _KINDS if k.stimulus)
"""Exogenous stimuli: the index parts the re-fit may use as a regressor."""
STOCK_KINDS: tuple[str, ...] = tuple(k.name for k in _KINDS if k.moves_stock)
"""Kinds that move stock (their ``quantity`` is units)."""
