"""The values the Redis layer reads and writes: catalogue entries, surfaces, events,
dead letters, versions; and a surface's encoding in Redis (header hash, float64 cells,
int8 guardrail codes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from service import keys
from service.store.cells import CellGrid, cell, epoch_ms

__all__ = [
    "DeadLetter",
    "EventKind",
    "EventOutcome",
    "EventRecord",
    "PublishResult",
    "SkuMeta",
    "StreamEvent",
    "SurfaceRecord",
    "VersionInfo",
]

EventKind = Literal["sale", "return", "restock", "signal"]


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

    def cell_at(self, units_left: int | None, now: datetime) -> tuple[int, int]:
        """``(row, period)`` of the cell served with ``units_left`` units at ``now``
        (clamped, :func:`service.store.cells.cell`)."""
        rows, cols = self.price.shape
        grid = CellGrid(rows, cols, epoch_ms(self.period_start), self.period_seconds * 1000)
        return cell(units_left, epoch_ms(now), grid)

    def price_at(self, units_left: int, now: datetime) -> float:
        """The price served with ``units_left`` units at ``now`` (:meth:`cell_at`)."""
        return float(self.price[self.cell_at(units_left, now)])


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
    """The units a refused return could take back: with ``return_exceeds_sales`` the
    units sold net of returns of the SKU in the market, with ``return_exceeds_sale``
    those of the sale it names."""


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
