"""Scarcity arms: inventory released in waves across a drop's selling time.

An experiment arm with ``release: waves`` and ``waves: k`` holds its markets' stock
back and releases it in ``k`` equal waves (:func:`pricing.experiments.release_schedule`)
spread evenly over the drop's open time (its windows laid end to end): wave 0 is the
stock seeded when the drop is registered, wave ``j`` arrives ``j / k`` of the way
through the open time as a ``restock`` event.

:class:`WaveReleaser` runs on the sync thread after each resync. A wave is one
``restock`` through :meth:`service.store.PriceStore.record_events` with the event id
``wave-<drop>-<market>-<j>``, so it is applied exactly once however many processes
and restarts try (the store's idempotency record), it appears in the SKU's event
stream (the re-fit and the experiment report see it) and every process's price book
hears the new count. Waves more than ``max_late`` overdue (a service down for days)
are not released late: the idempotency record may have expired by then, and a late
wave would change the experiment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd

from pricing.experiments import release_schedule
from service.config.models import ConfigBundle, DropConfig, SkuConfig
from service.store import EventRecord, PriceStore

__all__ = ["WaveReleaser", "initial_inventory", "wave_plan"]

log = logging.getLogger("dropprice.waves")


def _open_hours(drop: DropConfig) -> float:
    return sum((w.end - w.start).total_seconds() / 3600 for w in drop.windows)


def _at_open_offset(drop: DropConfig, hours: float) -> datetime:
    """Wall-clock time ``hours`` of open time after the first window opens."""
    left = hours
    for w in drop.windows:
        length = (w.end - w.start).total_seconds() / 3600
        if left < length:
            return w.start + timedelta(hours=left)
        left -= length
    return drop.windows[-1].end


def wave_plan(drop: DropConfig, sku: SkuConfig, market: str) -> list[tuple[datetime, int]]:
    """``[(release time, units), ...]`` of the SKU in ``market``; one entry (all the
    stock at the first opening) when the market's arm releases all at once."""
    units = int(sku.inventory.get(market, 0))
    arm = next((a for a in drop.arms if market in a.markets), None)
    if arm is None or arm.release != "waves" or arm.waves <= 1:
        return [(drop.windows[0].start, units)]
    total = _open_hours(drop)
    start = pd.Timestamp(0, unit="h", tz="UTC")
    plan = release_schedule(units, start, start + pd.Timedelta(hours=total), waves=arm.waves)
    return [(_at_open_offset(drop, (ts - start) / pd.Timedelta(hours=1)), q) for ts, q in plan]


def initial_inventory(drop: DropConfig, sku: SkuConfig) -> dict[str, int]:
    """Units to seed per market: everything, or the first wave for wave arms."""
    return {m: wave_plan(drop, sku, m)[0][1] for m in sku.inventory}


class WaveReleaser:
    """Releases the waves that are due (see the module docstring)."""

    def __init__(
        self,
        store: PriceStore,
        config: Callable[[], ConfigBundle],
        *,
        max_late: timedelta = timedelta(days=6),
    ) -> None:
        self.store = store
        self.config = config
        self.max_late = max_late
        self._done: set[str] = set()

    def due(self, now: datetime) -> list[EventRecord]:
        """Restock records of waves due at ``now`` and not yet seen applied here."""
        out: list[EventRecord] = []
        for drop in self.config().drops:
            if not any(a.release == "waves" for a in drop.arms):
                continue
            for sku in drop.skus:
                for market in sku.inventory:
                    for j, (when, units) in enumerate(wave_plan(drop, sku, market)):
                        event_id = f"wave-{drop.id}-{market}-{j}"
                        if j == 0 or units <= 0 or f"{sku.sku}/{event_id}" in self._done:
                            continue
                        if not when <= now < when + self.max_late:
                            continue
                        fields = {
                            "event_id": event_id,
                            "type": "restock",
                            "sku": sku.sku,
                            "market": market,
                            "quantity": str(units),
                            "ts": when.isoformat(),
                            "wave": str(j),
                        }
                        out.append(EventRecord(event_id, "restock", sku.sku, market, units, fields))
        return out

    def release_due(self, now: datetime | None = None) -> int:
        """Apply due waves; returns how many were applied now (never raises)."""
        now = now or datetime.now().astimezone()
        try:
            records = self.due(now)
            if not records:
                return 0
            outcomes = self.store.record_events(records)
        except Exception as exc:  # the sync thread must keep running
            log.warning("wave release failed; retried next resync", extra={"error": str(exc)})
            return 0
        applied = 0
        for rec, outcome in zip(records, outcomes, strict=True):
            if outcome.status in ("accepted", "duplicate"):
                self._done.add(f"{rec.sku}/{rec.event_id}")
                applied += outcome.status == "accepted"
        if applied:
            log.info("inventory waves released", extra={"waves": applied})
        return applied
