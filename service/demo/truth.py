"""The demo's shoppers: ground-truth demand and the demo's compressed clock.

Shoppers follow the simulator's demand model (:mod:`pricing.scenario`):

.. math:: \\lambda(p) = r \\, e^{\\gamma I} \\, (p / p_{list})^{\\beta + \\delta I}

per hour of shop time, with ``I`` the announcements' index (size times
``2^{-age/half-life}``). The engine never sees ``β``, ``γ`` or ``δ``; it learns them
from the events it is sent.

Time. The service prices by wall-clock time, and a surface's time step is the drop's
``period_minutes`` (at least one minute). A demo window lasts a few seconds, so each
window stands for exactly one pricing period: the shoppers of that minute come within
the window's seconds (:class:`ShopClock`). The history the engine learns from is sent
at the same hourly rates, so the demand the engine expects in a period is the demand
the window brings. (Were the window's seconds priced as a whole minute of the hourly
rate, the engine would expect several times the window's shoppers and price every
units-left row at the ceiling: one jump, then flat.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "ANNOUNCEMENT_HALF_LIFE_H",
    "ShopClock",
    "SkuTruth",
    "TRUTH",
    "announcement_index",
    "hourly_rate",
    "true_rate",
]


@dataclass(frozen=True)
class SkuTruth:
    """Ground-truth demand of one SKU (the scenario model's parameters)."""

    elasticity: float
    """β: own-price elasticity at intensity 0."""
    intensity_lift: float
    """γ: log-demand lift per unit of intensity."""
    intensity_elasticity: float
    """δ: change of the elasticity per unit of intensity."""
    rush_share: float
    """Share of the stock one window's shoppers would buy at the list price, intensity 0."""


TRUTH: Mapping[str, SkuTruth] = {
    # The artist variant: fans compare it with the regular cover (elastic), stock is tight.
    "CMX-VAR-001": SkuTruth(-1.4, 0.35, 0.15, 0.8),
    # The signed sketch variant: scarce, inelastic, sold on a four-step ladder.
    "CMX-VAR-002": SkuTruth(-0.8, 0.45, 0.10, 0.9),
    # The enamel pin: an impulse buy (elastic).
    "CMX-PIN-001": SkuTruth(-2.2, 0.20, 0.0, 0.6),
}
"""True demand of the demo drop's SKUs."""

DEFAULT_TRUTH = SkuTruth(-1.5, 0.3, 0.0, 0.6)
"""Demand of a SKU the demo does not know (a changed demo drop)."""

ANNOUNCEMENT_HALF_LIFE_H = 12.0
"""Half-life of an announcement's effect on demand (the index's default for announcements)."""


@dataclass(frozen=True)
class ShopClock:
    """How the demo's seconds map onto shop time: a window plays one pricing period.

    Attributes:
        period_s: the drop's pricing period in shop seconds (``period_minutes * 60``).
        window_s: the window's length in wall-clock seconds.
    """

    period_s: float
    window_s: float

    @property
    def speed(self) -> float:
        """Shop seconds per wall-clock second while a window is open."""
        return self.period_s / self.window_s

    def shop_hours(self, wall_seconds: float) -> float:
        """Shop hours that ``wall_seconds`` of an open window stand for."""
        return wall_seconds * self.speed / 3600.0


def hourly_rate(truth: SkuTruth, stock: int, period_s: float) -> float:
    """Units per shop hour at the list price, so one period sells ``rush_share`` of ``stock``."""
    return truth.rush_share * stock * 3600.0 / period_s


def announcement_index(at: datetime, announcements: list[dict[str, Any]]) -> float:
    """The truth's intensity: Σ size · 2^(−age / half-life) over past announcements."""
    total = 0.0
    for a in announcements:
        age_h = (at - a["ts"]).total_seconds() / 3600.0
        if age_h >= 0:
            total += a["size"] * 2.0 ** (-age_h / ANNOUNCEMENT_HALF_LIFE_H)
    return total


def true_rate(
    truth: SkuTruth, rate_per_hour: float, list_price: float, price: float, intensity: float
) -> float:
    """Expected units per shop hour at ``price`` (the scenario model's formula)."""
    beta = truth.elasticity + truth.intensity_elasticity * intensity
    lift = math.exp(truth.intensity_lift * intensity)
    return float(rate_per_hour * lift * (price / list_price) ** beta)
