"""Why a price is what it is: the cell served, the guardrail that bound it, the optimum
without guardrails, the elasticity and intensity behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from pricing.guardrails import bound_by
from pricing.money import compare_money
from service.config.models import ConfigBundle
from service.config.whatif.evaluate import _horizon_inputs, _rates
from service.config.whatif.live import LiveRow

__all__ = ["explain"]


UNCONSTRAINED_GRID = (0.25, 4.0, 48)
"""The unconstrained optimum is searched on ``list_price × geomspace(0.25, 4, 48)``."""


def explain(
    row: LiveRow,
    bundle: ConfigBundle,
    served: dict[str, Any],
    *,
    now: datetime | None = None,
    observed_intensity: float | None = None,
) -> dict[str, Any]:
    """Why ``served`` (the body ``GET /v1/prices`` answers now) is what it is.

    Args:
        observed_intensity: the index computed from the events now
            (``GET /v1/skus/{sku}/intensity``); without it, intensity now is the
            published value decayed with its half-life (the surface's own forecast).

    Returns:
        A JSON-ready dict: the served price, the surface cell it came from and the
        guardrail that bound it, the elasticity with its 95 % interval, intensity,
        units and time left, the SKU that absorbs its demand if it sells out
        (``failover``, or ``None``), and the unconstrained optimum at this cell.
    """
    from pricing.intensity import IntensityParams, forecast_intensity
    from service.failover import failover_of

    now = now or datetime.now(UTC)
    surface = row.surface
    cols = surface.price.shape[1]
    n, t = surface.cell_at(row.units_left, now)
    code = int(surface.guardrail_codes[n, t]) if surface.guardrail_codes is not None else 0
    el = dict(surface.elasticity or {})
    beta, se = el.get("beta"), el.get("beta_se")
    half_life = IntensityParams().half_life("announcement")
    hours_since = max(0.0, (now - row.reference_time).total_seconds() / 3600)
    forecast_now = float(
        forecast_intensity(
            np.array([row.intensity_at_publish]), np.array([hours_since]), half_life
        )[0, 0]
    )
    intensity_now = observed_intensity if observed_intensity is not None else forecast_now
    elasticity: dict[str, Any] = {"beta": beta, "se": se}
    if beta is not None and se is not None:
        elasticity["interval95"] = [beta - 1.96 * se, beta + 1.96 * se]
    if beta is not None:
        # The fit's intensity is centred at the pair's usual level (intensity_mean).
        centre = float((surface.explain or {}).get("intensity_mean", 0.0) or 0.0)
        # The fit's regressor is the exogenous index (see service.refit), whose value now
        # is the published one decayed with its half-life.
        elasticity["at_intensity_now"] = beta + float(el.get("delta", 0.0)) * (
            forecast_now - centre
        )
    elasticity.update({k: el[k] for k in ("delta", "gamma") if k in el})
    elasticity["replaced"] = bool((surface.explain or {}).get("elasticity_replaced", False))

    window = row.drop.window_at(now) or row.drop.next_window(now)
    period = timedelta(seconds=surface.period_seconds)
    time_left: dict[str, Any] = {"periods_left": cols - t}
    if window is not None:
        time_left.update(
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            window_open=window.contains(now),
            seconds_left=max(0.0, (window.end - max(now, window.start)).total_seconds()),
        )

    optimum: dict[str, Any] = {"served": float(surface.price[n, t])}
    reasons: list[str] = list(row.notes)
    bound = bound_by(code)
    if row.fit is not None and row.fit_row is not None and beta is not None:
        from pricing.policy import solve_surfaces

        lo, hi, k = UNCONSTRAINED_GRID
        grid = row.sku_config.list_price * np.geomspace(lo, hi, k)
        hours, intensity, scale = _horizon_inputs(row, surface.period_start, cols, period)
        rates = _rates(row, grid, hours, intensity, scale, float(beta))
        cost = row.sku_config.unit_cost if row.drop.objective == "profit" else 0.0
        sol = solve_surfaces(
            rates[None], grid[None], max(n, 1), unit_cost=cost, salvage=row.sku_config.salvage_value
        )
        free = float(np.asarray(sol.price)[0, n, t])
        optimum["unconstrained"] = round(free, 4)
        rails = row.rails
        if bound is None:
            # The DP's ladder already lies inside the bounds: say which one it hit.
            if rails.ceiling is not None and compare_money(free, rails.ceiling) > 0:
                bound = "ceiling"
            elif rails.floor is not None and compare_money(free, rails.floor) < 0:
                bound = "floor"
            elif not rails.allow_below_cost and compare_money(free, row.sku_config.unit_cost) < 0:
                bound = "cost"
    else:
        reasons.append("no fit stored with the live version: the unconstrained optimum is unknown")
    if bound is not None:
        reasons.append(f"the {bound} guardrail bound the price at this cell")
    else:
        reasons.append("the optimum passed every guardrail unchanged")
    return {
        "sku": row.sku,
        "market": row.market,
        "served": served,
        "surface": {
            "version": row.version,
            "cell": {"units_left": n, "period": t},
            "period_start": surface.period_start.isoformat(),
            "period_seconds": surface.period_seconds,
            "price": float(surface.price[n, t]),
            "guardrail_code": code,
        },
        "bound_by": bound,
        "elasticity": elasticity,
        "intensity": {
            "at_publish": row.intensity_at_publish,
            "now": intensity_now,
            "forecast_now": forecast_now,
            "source": "events" if observed_intensity is not None else "forecast",
            "half_life_hours": half_life,
        },
        "units_left": row.units_left,
        "failover": failover_of(row.drop, row.sku, row.market),
        "time_left": time_left,
        "optimum": optimum,
        "guardrails": row.rails.model_dump(mode="json"),
        "fit_id": row.fit_id,
        "reasons": reasons,
    }
