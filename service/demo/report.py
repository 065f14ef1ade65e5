"""The demo's summary: books, prices per window and a verdict per SKU against fixed.

``prices_moved`` is true only when some SKU was served more than one price within one
window (the price followed the units left); a price that changed only between windows,
with a re-fit, is ``prices_moved_between_windows``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.demo.state import DemoState, SkuState

__all__ = ["summary", "verdict"]


def _rail_value(s: SkuState, field: str | None) -> str:
    value = s.guardrails.get(field) if field else None
    if isinstance(value, list):
        return f" {', '.join(f'{v:.2f}' for v in value)}"
    return f" {value:g}" if isinstance(value, int | float) else ""


def _binding(s: SkuState) -> tuple[str | None, int, int]:
    """The guardrail that bound most look-ups, how many it bound, and the look-ups."""
    served = [x for w in s.windows for x in w.served]
    counts = Counter(x.bound_by for x in served if x.bound_by is not None)
    if not counts:
        return None, 0, len(served)
    name, n = counts.most_common(1)[0]
    return name, n, len(served)


def verdict(s: SkuState) -> str:
    """One line: the SKU against its fixed list price on the same shoppers, and why."""
    fixed = s.fixed_revenue
    diff = s.revenue - fixed
    pct = f" ({100.0 * diff / fixed:+.1f} %)" if fixed > 0 else ""
    rail, bound_n, looked = _binding(s)
    why_rail = (
        f"; the {rail}{_rail_value(s, rail)} bound {bound_n} of {looked} look-ups" if rail else ""
    )
    if diff >= 0:
        return (
            f"earns {diff:,.2f} more than at its fixed {s.list_price:.2f}{pct}: "
            f"{s.units_sold} sold against {s.fixed_units}{why_rail}"
        )
    avg = s.revenue / s.units_sold if s.units_sold else s.price
    unsold = f" and left {s.units_left} unsold" if s.units_left else ""
    if avg > s.list_price:
        reason = (
            f"priced above its list (average {avg:.2f}), it sold {s.units_sold} against "
            f"{s.fixed_units} at the fixed price{unsold}: with demand this elastic (true β "
            f"{s.truth.elasticity:g}, fitted {_beta(s)}) the units lost outweigh the "
            "higher price"
        )
    else:
        reason = (
            f"priced at or below its list (average {avg:.2f}) to sell within the window, "
            f"it sold {s.units_sold} against {s.fixed_units} at the fixed price, which "
            "kept full price for later windows"
        )
    return f"earns {-diff:,.2f} LESS than at its fixed {s.list_price:.2f}{pct}: {reason}{why_rail}"


def _beta(s: SkuState) -> str:
    return f"{s.elasticity:.2f}" if s.elasticity is not None else "none"


def _sku_summary(s: SkuState) -> dict[str, Any]:
    served = s.prices_served or [s.price]
    return {
        "sku": s.sku,
        "market": s.market,
        "name": s.name,
        "list_price": s.list_price,
        "guardrails": s.guardrails,
        "initial_inventory": s.initial_inventory,
        "units_left": s.units_left,
        "units_sold": s.units_sold,
        "revenue": round(s.revenue, 2),
        "sales": [[u, p] for u, p in s.sales],
        "refused_sales": s.refused,
        "first_price": served[0],
        "last_price": s.price,
        "min_price": min(served),
        "max_price": max(served),
        "distinct_prices": sorted(set(served)),
        "windows": [w.to_dict() for w in s.windows],
        "elasticity": s.elasticity,
        "elasticity_se": s.elasticity_se,
        "elasticity_from_prior": s.elasticity_replaced,
        "true_elasticity": s.truth.elasticity,
        "intensity": {
            "index": s.intensity,
            "usual": s.intensity_usual,
            "relative": s.intensity_relative,
            "unit": "multiple of the index's mean over the last 24 hours (1.0: a usual hour)",
        },
        "fixed_price": {"units_sold": s.fixed_units, "revenue": round(s.fixed_revenue, 2)},
        "verdict": verdict(s),
    }


def summary(state: DemoState, duration_s: float, seed: int, seconds: float) -> dict[str, Any]:
    """The whole run, JSON-ready; each SKU lists its accepted sales as
    ``[units, charged unit price]`` pairs, so the books can be checked from it."""
    skus = list(state.skus.values())
    revenue = sum(s.revenue for s in skus)
    fixed = sum(s.fixed_revenue for s in skus)
    balanced = all(
        s.initial_inventory is not None
        and s.units_left is not None
        and s.initial_inventory - s.units_left == s.units_sold
        for s in skus
    )
    within = any(len(w.distinct_prices()) > 1 for s in skus for w in s.windows)
    firsts = [w.served[0].price for s in skus for w in s.windows if w.served]
    per_sku_window_firsts = {
        s.sku: [w.served[0].price for w in s.windows if w.served] for s in skus
    }
    between = any(len(set(v)) > 1 for v in per_sku_window_firsts.values())
    return {
        "drop": state.drop_id,
        "market": state.market,
        "windows": state.windows,
        "window_seconds": round(state.window_s, 3),
        "duration_s": duration_s,
        "seed": seed,
        "loosened_rules": [r.to_dict() for r in state.loosened],
        "skus": [_sku_summary(s) for s in skus],
        "refits": state.refits,
        "approvals": state.approvals,
        "announcements": state.announcements,
        "revenue": round(revenue, 2),
        "units_sold": sum(s.units_sold for s in skus),
        "fixed_price": {
            "revenue": round(fixed, 2),
            "units_sold": sum(s.fixed_units for s in skus),
        },
        "uplift_pct": round(100.0 * (revenue - fixed) / fixed, 2) if fixed > 0 else None,
        "price_lookups": state.lookups,
        "sale_events": state.sale_events,
        "retried_429": state.retried_429,
        "ticks_per_window": state.ticks,
        "prices_moved": within,
        "prices_moved_between_windows": between,
        "prices_served": len(firsts) > 0,
        "books_balanced": balanced,
        "seconds": round(seconds, 2),
    }
