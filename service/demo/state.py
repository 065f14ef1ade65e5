"""What the demo knows as the drop runs: per SKU, per window, and for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.demo.truth import SkuTruth

__all__ = ["DemoState", "Served", "SkuState", "WindowLog"]


@dataclass(frozen=True)
class Served:
    """One price look-up: the units left it was quoted at, the price and what bound it."""

    units_left: int | None
    price: float
    bound_by: str | None
    """The guardrail field that bound the surface cell served (``None``: the optimum)."""


@dataclass
class WindowLog:
    """Everything one SKU served and sold in one window."""

    window: int
    served: list[Served] = field(default_factory=list)
    units_sold: int = 0
    revenue: float = 0.0
    fixed_units: int = 0
    fixed_revenue: float = 0.0

    def distinct_prices(self) -> list[float]:
        return sorted({s.price for s in self.served})

    def to_dict(self) -> dict[str, Any]:
        """The window's prices: each distinct price with the units left it was served
        at and the guardrail that bound it."""
        by_price: dict[float, dict[str, Any]] = {}
        for s in self.served:
            entry = by_price.setdefault(
                s.price, {"price": s.price, "units_left": [], "bound_by": s.bound_by}
            )
            if s.units_left is not None and s.units_left not in entry["units_left"]:
                entry["units_left"].append(s.units_left)
        prices = []
        for price in sorted(by_price):
            entry = by_price[price]
            left = entry.pop("units_left")
            entry["units_left_range"] = [min(left), max(left)] if left else None
            prices.append(entry)
        lefts = [s.units_left for s in self.served if s.units_left is not None]
        return {
            "window": self.window + 1,
            "lookups": len(self.served),
            "distinct_prices": len(by_price),
            "prices": prices,
            "units_left_start": lefts[0] if lefts else None,
            "units_left_end": lefts[-1] if lefts else None,
            "units_sold": self.units_sold,
            "revenue": round(self.revenue, 2),
            "fixed_price": {
                "units_sold": self.fixed_units,
                "revenue": round(self.fixed_revenue, 2),
            },
        }


@dataclass
class SkuState:
    """What the demo knows of one SKU-market, updated as the drop runs."""

    sku: str
    market: str
    name: str
    list_price: float
    truth: SkuTruth
    rate_per_hour: float
    """True demand at the list price, units per shop hour."""
    guardrails: dict[str, Any] = field(default_factory=dict)
    """The SKU's effective guardrails as configured (floor, ceiling, ladder, ...)."""
    price: float = 0.0
    previous_price: float | None = None
    bound_by: str | None = None
    source: str = "base"
    version: str | None = None
    units_left: int | None = None
    initial_inventory: int | None = None
    units_sold: int = 0
    revenue: float = 0.0
    sales: list[tuple[int, float]] = field(default_factory=list)
    windows: list[WindowLog] = field(default_factory=list)
    refused: int = 0
    intensity: float | None = None
    """The service's micro-event index now (``GET /v1/skus/{sku}/intensity``)."""
    intensity_usual: float | None = None
    """Its mean over the last day's hours, so ``intensity / intensity_usual`` reads ~1.0."""
    elasticity: float | None = None
    elasticity_se: float | None = None
    elasticity_replaced: bool = False
    fixed_left: int = 0
    fixed_units: int = 0
    fixed_revenue: float = 0.0

    @property
    def intensity_relative(self) -> float | None:
        """The index now as a multiple of its usual level (1.0: a usual hour)."""
        if self.intensity is None or not self.intensity_usual:
            return None
        return self.intensity / self.intensity_usual

    @property
    def prices_served(self) -> list[float]:
        return [s.price for w in self.windows for s in w.served]

    def window(self, k: int) -> WindowLog:
        """This SKU's log of window ``k`` (created on first use)."""
        while len(self.windows) <= k:
            self.windows.append(WindowLog(len(self.windows)))
        return self.windows[k]


@dataclass
class DemoState:
    """The whole demo's state, handed to the display after every tick."""

    drop_id: str
    market: str
    phase: str = "starting"
    window: int = -1
    windows: int = 0
    window_s: float = 0.0
    seconds_left: float = 0.0
    skus: dict[str, SkuState] = field(default_factory=dict)
    loosened: list[Any] = field(default_factory=list)
    """The drop's rules the demo changed (:class:`service.demo.setup.Loosened`)."""
    refits: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    announcements: list[dict[str, Any]] = field(default_factory=list)
    truth_announcements: list[dict[str, Any]] = field(default_factory=list)
    """``{"ts": datetime, "size": float}`` of every announcement, for the true demand."""
    log: list[str] = field(default_factory=list)
    lookups: int = 0
    sale_events: int = 0
    retried_429: int = 0
    ticks: list[int] = field(default_factory=list)
