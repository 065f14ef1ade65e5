"""The stock plan of a drop: every SKU's units over its markets and windows.

:func:`plan_stock` values every slot with one DP solve (:func:`~pricing.allocation.curves.value_curves`)
and hands each SKU's units out with :func:`~pricing.allocation.marginal.allocate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pricing.allocation.curves import value_curves
from pricing.allocation.failover import Failover
from pricing.allocation.marginal import CONCAVITY_TOL, allocate
from pricing.exceptions import InputError

__all__ = ["SlotDemand", "StockPlan", "plan_stock"]


@dataclass(frozen=True)
class SlotDemand:
    """One slot to plan: a SKU in a market for one window, with its demand and costs.

    Attributes:
        sku, market, window: the slot's key (``window`` counts from 0).
        rates: ``[T, K]`` expected demand per period at each ladder price.
        prices: ``[K]`` the ladder the engine prices from.
        unit_cost, salvage, pricing_cost, transfer_cost, returns_rate: as
            :func:`value_curves`.
        on_hand: units the market already holds for this slot.
    """

    sku: str
    market: str
    window: int
    rates: np.ndarray
    prices: np.ndarray
    unit_cost: float = 0.0
    salvage: float = 0.0
    pricing_cost: float = 0.0
    transfer_cost: float = 0.0
    on_hand: int = 0
    returns_rate: float = 0.0


@dataclass(frozen=True)
class StockPlan:
    """Units per SKU x market x window and their expected outcome (see :func:`plan_stock`).

    Attributes:
        rows: one dict per slot: ``sku``, ``market``, ``window``, ``units``,
            ``expected_sold``, ``sell_through``, ``expected_revenue``, ``expected_profit``,
            ``marginal_value`` (of the last unit placed), ``next_unit_value``,
            ``opening_price``, and where the SKU has a failover in that market
            ``failover_sku``, ``failover_share``, ``failover_source``
            (:class:`~pricing.allocation.failover.Failover`); in the order of the slots given.
        skus: one dict per SKU: ``total``, ``placed``, ``held_back``, ``holdback_value``,
            ``expected_profit`` (the objective), ``method``.
        curves: ``(sku, market, window)`` -> ``[N+1]`` slot value curve (for figures).
        failover: where each variant's shoppers go when it sells out, per market.
    """

    rows: list[dict[str, Any]]
    skus: dict[str, dict[str, Any]]
    curves: dict[tuple[str, str, int], np.ndarray] = field(repr=False)
    failover: tuple[Failover, ...] = ()

    @property
    def expected_profit(self) -> float:
        """Sum of the SKUs' objectives."""
        return float(sum(s["expected_profit"] for s in self.skus.values()))

    def by_market_window(self) -> list[dict[str, Any]]:
        """The plan per market and window, over its SKUs: what an operator ships where.

        Returns:
            One dict per (market, window), in the rows' order: ``market``, ``window``,
            ``units``, ``expected_sold``, ``sell_through``, ``expected_revenue``, and
            ``next_unit_value`` / ``next_unit_sku``: the most one more unit of any of its
            SKUs would add, and which SKU (``nan`` / ``None`` when none can take one).
        """
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for r in self.rows:
            cell = out.setdefault(
                (r["market"], r["window"]),
                {
                    "market": r["market"],
                    "window": r["window"],
                    "units": 0,
                    "expected_sold": 0.0,
                    "expected_revenue": 0.0,
                    "next_unit_value": float("nan"),
                    "next_unit_sku": None,
                },
            )
            cell["units"] += r["units"]
            cell["expected_sold"] += r["expected_sold"]
            cell["expected_revenue"] += r["expected_revenue"]
            nxt = r["next_unit_value"]
            best = cell["next_unit_value"]
            if math.isfinite(nxt) and (not math.isfinite(best) or nxt > best):
                cell["next_unit_value"], cell["next_unit_sku"] = nxt, r["sku"]
        for cell in out.values():
            units = cell["units"]
            cell["sell_through"] = cell["expected_sold"] / units if units else float("nan")
        return list(out.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan (``nan`` becomes ``None``)."""

        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "expected_profit": round(self.expected_profit, 2),
            "skus": {k: {f: clean(v) for f, v in s.items()} for k, s in self.skus.items()},
            "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows],
            "markets": [{k: clean(v) for k, v in m.items()} for m in self.by_market_window()],
            "failover": [f._asdict() for f in self.failover],
        }

    def __str__(self) -> str:
        head = f"StockPlan: {len(self.skus)} SKUs, {len(self.rows)} slots, "
        head += f"expected profit {self.expected_profit:,.2f}"
        lines = [head]
        for r in self.rows[:20]:
            lines.append(
                f"  {r['sku']:<14} {r['market']:<20} w{r['window']} {r['units']:>6} units  "
                f"profit {r['expected_profit']:>10,.2f}  last unit {r['marginal_value']}"
            )
        return "\n".join(lines)


def plan_stock(
    slots: Sequence[SlotDemand],
    totals: Mapping[str, int],
    *,
    holdback_value: Mapping[str, float] | float = 0.0,
    tol: float = CONCAVITY_TOL,
    failover: Sequence[Failover] = (),
) -> StockPlan:
    """Plan every SKU's stock over its slots: one DP solve for all slots, then :func:`allocate`.

    Slots of one SKU compete for its ``totals[sku]`` units; SKUs are independent. Slots
    with different horizons or ladder sizes are padded (zero demand after a short window,
    the last ladder step repeated).

    Args:
        slots: the slots to plan.
        totals: units available per SKU (every SKU of ``slots``).
        holdback_value: value of a unit not placed, per SKU or one for all.
        tol: concavity slack.
        failover: each variant's failover SKU per market
            (:func:`~pricing.allocation.failover.failover_table`), named on its rows.

    Returns:
        :class:`StockPlan`.

    Raises:
        InputError: a SKU without a total, a negative total, or malformed demand.
    """
    if not slots:
        raise InputError("plan_stock needs at least one slot")
    missing = sorted({s.sku for s in slots} - set(totals))
    if missing:
        raise InputError(f"totals has no units for SKU(s) {missing}")
    bad = {k: v for k, v in totals.items() if not (isinstance(v, int) and v >= 0)}
    if bad:
        raise InputError(f"totals must be whole numbers of units >= 0, got {bad}")
    t_len = max(np.asarray(s.rates).shape[0] for s in slots)
    k_len = max(np.asarray(s.prices).shape[0] for s in slots)
    rates = np.zeros((len(slots), t_len, k_len))
    prices = np.zeros((len(slots), k_len))
    for j, s in enumerate(slots):
        r, p = np.asarray(s.rates, dtype=float), np.asarray(s.prices, dtype=float)
        if r.ndim != 2 or p.ndim != 1 or r.shape[1] != p.shape[0]:
            raise InputError(
                f"{s.sku}/{s.market}/w{s.window}: rates must be [T, K] and prices [K], "
                f"got {r.shape} and {p.shape}"
            )
        rates[j, : r.shape[0]] = np.pad(r, ((0, 0), (0, k_len - p.size)), mode="edge")
        prices[j] = np.pad(p, (0, k_len - p.size), mode="edge")
    caps = np.array([totals[s.sku] for s in slots], dtype=np.int64)

    def per_slot(name: str) -> np.ndarray:
        return np.array([float(getattr(s, name)) for s in slots])

    curves = value_curves(
        rates,
        prices,
        caps,
        salvage=per_slot("salvage"),
        unit_cost=per_slot("unit_cost"),
        pricing_cost=per_slot("pricing_cost"),
        transfer_cost=per_slot("transfer_cost"),
        on_hand=per_slot("on_hand"),
        returns_rate=per_slot("returns_rate"),
    )
    rows: list[dict[str, Any]] = [{} for _ in slots]  # in the order of ``slots``
    skus: dict[str, dict[str, Any]] = {}
    for sku in dict.fromkeys(s.sku for s in slots):
        idx = np.array([j for j, s in enumerate(slots) if s.sku == sku])
        total = int(totals[sku])
        b = float(holdback_value[sku] if isinstance(holdback_value, Mapping) else holdback_value)
        alloc = allocate(curves.value[idx, : total + 1], total, holdback_value=b, tol=tol)
        skus[sku] = {
            "total": total,
            "placed": int(alloc.units.sum()),
            "held_back": alloc.held_back,
            "holdback_value": b,
            "expected_profit": alloc.objective,
            "method": alloc.method,
        }
        for pos, j in enumerate(idx):
            n = int(alloc.units[pos])
            s = slots[int(j)]
            sold = float(curves.sold[j, n])
            rows[int(j)].update(
                {
                    "sku": s.sku,
                    "market": s.market,
                    "window": s.window,
                    "units": n,
                    "expected_sold": sold,
                    "sell_through": sold / n if n else float("nan"),
                    "expected_revenue": float(curves.revenue[j, n]),
                    "expected_profit": float(curves.value[j, n]),
                    "marginal_value": float(alloc.marginal[pos]),
                    "next_unit_value": float(alloc.next_marginal[pos]),
                    "opening_price": float(curves.price[j, n]),
                }
            )
    keyed = {
        (s.sku, s.market, s.window): curves.value[j, : totals[s.sku] + 1]
        for j, s in enumerate(slots)
    }
    named = {(f.sku, f.market): f for f in failover}
    for row in rows:
        f = named.get((row["sku"], row["market"]))
        if f is not None:
            row.update(failover_sku=f.absorbed_by, failover_share=f.share, failover_source=f.source)
    return StockPlan(rows=rows, skus=skus, curves=keyed, failover=tuple(failover))
