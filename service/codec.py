"""The event stream's codec: what ``POST /v1/events`` writes, and what a reader may trust.

Every accepted event becomes one entry of its SKU's stream (``dp:{sku}:events``) whose
fields are strings. :func:`encode_fields` writes them from the *validated* event, so a
number is always written canonically (``3``, ``19.99``), never as the text a client
sent (``True``, ``"3"``); :mod:`service.schemas` refuses booleans and strings where a
JSON number is meant, so nothing else can reach it.

Streams may still hold entries written before that rule, or by hand. A reader must not
let one of them stop it: :func:`split_poisoned` checks a batch of entries column by
column and returns the good ones and, for each entry that cannot be decoded, the reason.
The re-fit dead-letters those (:meth:`service.store.PriceStore.dead_letter`); the
signals and intensity routes skip them.

:func:`events_frame` is the one decoder from stream entries to the events table every
reader works on (the re-fit's panel, the intensity index, the signal detectors); its
columns follow the event table (:data:`pricing.events.EVENT_KINDS`: each kind's size
field). :func:`readable_events` splits off the poisoned entries first and counts them.

An entry is poisoned when:

- it has no ``event_id`` or no ``type``;
- its ``ts`` is present but is not an ISO 8601 time;
- a numeric field (``quantity``, ``unit_price``, ``charged_price``, ``units_left``,
  ``reach``, ``count``, ``weight``) is present but is not a finite number;
- ``quantity``, ``reach`` or ``count`` is not a non-negative integer, or ``weight`` is
  negative;
- a ``sale``, ``return`` or ``restock`` has no ``quantity``, or a ``sale`` has neither a
  positive ``unit_price`` nor a positive ``charged_price``.

Example:
    >>> good, bad = split_poisoned(entries)  # doctest: +SKIP
    >>> [(e.entry_id, reason) for e, reason in bad]  # doctest: +SKIP
    [('1733420000000-0', "quantity: 'True' is not a number")]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pricing.events import EVENT_KINDS, STOCK_KINDS
from service.store.pseudonyms import CUSTOMER_FIELD

if TYPE_CHECKING:
    from service.store import StreamEvent

__all__ = [
    "CUSTOMER_FIELD",
    "EVENT_COLUMNS",
    "NUMERIC_FIELDS",
    "encode_fields",
    "entry_text",
    "events_frame",
    "fields_as_text",
    "readable_events",
    "split_poisoned",
]

_SIZE_COLUMNS = tuple(dict.fromkeys(k.size_field for k in EVENT_KINDS.values()))
"""Every kind's size field (:data:`pricing.events.EVENT_KINDS`), in table order."""
NUMERIC_FIELDS = tuple(
    dict.fromkeys(("quantity", "unit_price", "charged_price", "units_left", *_SIZE_COLUMNS))
)
"""Stream fields that hold numbers: prices, stock, and every kind's size field."""
_COUNTS = ("quantity", "reach", "count")
"""Numeric fields that are non-negative integers."""


def _canonical(value: Any) -> str:
    if isinstance(value, bool):  # never reached through the schemas; refuse loudly
        raise TypeError(f"a stream field cannot hold a boolean, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_TEXT: dict[type, Any] = {
    str: str.__str__,
    int: int.__repr__,
    float: float.__repr__,
    datetime: datetime.isoformat,  # ``ts``, always set: ISO 8601 with its zone
}
"""The canonical text of the plain types an event holds, by exact type (one dict look-up
per field on the intake path, instead of a chain of ``isinstance``)."""


def encode_fields(event: Any, sku: str) -> dict[str, str]:
    """The stream entry of a validated event, every value in canonical text.

    Args:
        event: a validated event model of :mod:`service.schemas` (defaults filled in).
        sku: the SKU this entry is for (an announcement naming several is one entry in
            each SKU's stream).

    Returns:
        Field name to text: the event's fields that are set (lists left out), ``sku``,
        and ``ts`` in ISO 8601 with its zone.

    Example:
        >>> from service.schemas import event_adapter
        >>> ev = event_adapter.validate_python({"type": "sale", "event_id": "e1",
        ...     "ts": "2026-12-05T18:00:00Z", "sku": "TEE-1", "market": "nyc",
        ...     "quantity": 2, "unit_price": 30})
        >>> encode_fields(ev, "TEE-1")["quantity"], encode_fields(ev, "TEE-1")["unit_price"]
        ('2', '30.0')
    """
    out: dict[str, str] = {}
    # The model's own attributes (its fields: the schemas are flat), read once.
    for name, value in event.__dict__.items():
        if value is None:
            continue
        text = _TEXT.get(type(value))
        if text is not None:
            out[name] = text(value)
        elif not isinstance(value, list | dict):
            out[name] = _canonical(value)
    out["sku"] = sku
    return out


def entry_text(value: Any) -> str | None:
    """A stream value as text (``None`` when absent or empty); bytes decoded leniently."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text or None


def _column(entries: Sequence[StreamEvent], name: str, raw: bool) -> np.ndarray:
    key: Any = name.encode() if raw else name
    other: Any = name if raw else name.encode()
    # Fields are all bytes or all str in one read; look the other way up only on a miss.
    return np.array(
        [entry_text(e.fields.get(key, e.fields.get(other))) for e in entries], dtype=object
    )


def split_poisoned(
    entries: Sequence[StreamEvent],
) -> tuple[list[StreamEvent], list[tuple[StreamEvent, str]]]:
    """Separate the entries a reader can decode from those it cannot.

    Args:
        entries: stream entries, fields decoded to ``str`` or as the bytes Redis returned.

    Returns:
        ``(good, poisoned)``: the good entries in their order, and ``(entry, reason)``
        for each poisoned one (the first problem found, naming the field and the value).
    """
    if not entries:
        return [], []
    first = next(iter(entries[0].fields), "")
    raw = isinstance(first, bytes)
    n = len(entries)
    reasons = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, reason: str | np.ndarray) -> None:
        todo = mask & pd.isna(reasons)
        if todo.any():
            reasons[todo] = reason[todo] if isinstance(reason, np.ndarray) else reason

    def described(field: str, values: np.ndarray, what: str) -> np.ndarray:
        return np.array([f"{field}: {v!r} is not {what}" for v in values], dtype=object)

    present: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for name in ("event_id", "type", "ts", *NUMERIC_FIELDS):
        column = _column(entries, name, raw)
        present[name] = pd.notna(column)
        values[name] = column
    flag(~present["event_id"], "event_id: missing")
    flag(~present["type"], "type: missing")
    ts = pd.to_datetime(pd.Series(values["ts"]), utc=True, format="ISO8601", errors="coerce")
    flag(present["ts"] & ts.isna().to_numpy(), described("ts", values["ts"], "an ISO 8601 time"))
    numbers: dict[str, np.ndarray] = {}
    for name in NUMERIC_FIELDS:
        x = pd.to_numeric(pd.Series(values[name]), errors="coerce").to_numpy(dtype=float)
        numbers[name] = x
        flag(present[name] & ~np.isfinite(x), described(name, values[name], "a number"))
    for name in _COUNTS:
        x = numbers[name]
        with np.errstate(invalid="ignore"):
            bad = present[name] & ((x < 0) | (np.floor(x) != x))
        flag(bad, described(name, values[name], "a non-negative integer"))
    with np.errstate(invalid="ignore"):
        flag(
            present["weight"] & (numbers["weight"] < 0),
            described("weight", values["weight"], "a weight >= 0"),
        )
    kind = values["type"]
    flag(
        np.isin(kind, STOCK_KINDS) & ~present["quantity"],
        np.array([f"quantity: missing on a {k}" for k in kind], dtype=object),
    )
    with np.errstate(invalid="ignore"):
        priced = (numbers["unit_price"] > 0) | (numbers["charged_price"] > 0)
    flag(
        (kind == "sale") & ~priced,
        "unit_price: a sale needs a positive unit_price or charged_price",
    )
    good = [e for e, r in zip(entries, reasons, strict=True) if r is None]
    poisoned = [(e, str(r)) for e, r in zip(entries, reasons, strict=True) if r is not None]
    return good, poisoned


def fields_as_text(fields: Mapping[Any, Any]) -> dict[str, str]:
    """An entry's fields as text (for a dead letter or a log line)."""
    return {entry_text(k) or "": entry_text(v) or "" for k, v in fields.items()}


_TABLE_NUMERIC = tuple(dict.fromkeys(("quantity", "unit_price", *_SIZE_COLUMNS)))
EVENT_COLUMNS = (
    "event_id", "ts", "type", "sku", "market", *_TABLE_NUMERIC, "creator", CUSTOMER_FIELD
)  # fmt: skip
"""Columns of the events table :func:`events_frame` returns (numeric ones are floats)."""
_TEXT_FIELDS = ("type", "event_id", "market", "ts", "creator", CUSTOMER_FIELD)


def _field_column(entries: Sequence[StreamEvent], name: str, raw: bool) -> np.ndarray:
    """One field of every entry as ``str`` (``None`` where absent or empty), decoded in
    one pass (pyarrow) rather than entry by entry: at a day of events for 10,000 SKUs,
    decoding entry by entry was most of the re-fit's panel stage."""
    import pyarrow as pa

    key: Any = name.encode() if raw else name
    arr = pa.array([e.fields.get(key) for e in entries], type=pa.binary() if raw else pa.string())
    if raw:
        arr = arr.cast(pa.string())
    out = np.asarray(arr.to_pandas(), dtype=object)
    out[out == ""] = None
    return out


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": pd.Series(dtype=str),
            "ts": pd.Series(dtype="datetime64[ns, UTC]"),
            "type": pd.Series(dtype=str),
            "sku": pd.Series(dtype=str),
            "market": pd.Series(dtype=str),
            **{c: pd.Series(dtype=float) for c in _TABLE_NUMERIC},
            "creator": pd.Series(dtype=object),
            CUSTOMER_FIELD: pd.Series(dtype=object),
        }
    )


def events_frame(entries: Sequence[StreamEvent]) -> pd.DataFrame:
    """The events table of decodable stream entries, in stream order, with typed columns.

    Columns :data:`EVENT_COLUMNS`. ``sku`` is the stream's SKU (an announcement naming
    several is one entry in each). ``unit_price`` is the price the POS reported it
    charged; when it reported none, the price the store charged (``charged_price``: the
    quote, surface or list price). ``ts`` is the event's own time, else the time Redis
    appended the entry (its id's milliseconds). Rows are not de-duplicated here: readers
    keep the first row of each ``(event_id, sku)`` (:func:`service.panel.dedupe_events`).

    Args:
        entries: stream entries that passed :func:`split_poisoned`, fields as ``str`` or
            as the bytes Redis returned (all one or the other).
    """
    if not entries:
        return _empty_table()
    raw = isinstance(next(iter(entries[0].fields), ""), bytes)
    df = pd.DataFrame(
        {name: _field_column(entries, name, raw) for name in (*_TEXT_FIELDS, *NUMERIC_FIELDS)}
    )
    df["sku"] = [e.sku for e in entries]
    for col in NUMERIC_FIELDS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    reported = df["unit_price"]
    df["unit_price"] = df["charged_price"].where(~(reported > 0), reported)
    appended = pd.to_datetime(
        [int(e.entry_id.split("-", 1)[0]) for e in entries], unit="ms", utc=True
    )
    ts = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["ts"] = ts.where(ts.notna(), pd.Series(appended, index=df.index))
    out = df[list(EVENT_COLUMNS)].copy()
    for col in ("event_id", "type", "sku", "market"):
        out[col] = out[col].astype(str)
    for col in _TABLE_NUMERIC:
        out[col] = out[col].astype(float)
    return out


def readable_events(entries: Sequence[StreamEvent]) -> pd.DataFrame:
    """:func:`events_frame` of the entries a reader can decode; the poisoned ones
    (:func:`split_poisoned`) are left out and counted in ``attrs["poisoned"]``."""
    good, poisoned = split_poisoned(entries)
    frame = events_frame(good)
    frame.attrs["poisoned"] = len(poisoned)
    return frame
