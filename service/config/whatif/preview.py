"""What a config change would do to one SKU-market's price: the re-fit's solve stage re-run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from pricing.guardrails import bound_by
from service.config.models import ConfigBundle, SkuConfig
from service.config.whatif.evaluate import (
    _horizon_inputs,
    _rates,
    evaluate_surface,
    posterior_elasticity,
)
from service.config.whatif.live import LiveRow, NoLiveSurface, PreviewChanges

__all__ = ["preview"]


MAX_PREVIEW_UNITS = 100_000
"""Largest stock a preview re-solves (the DP grows with the units left)."""


def _elasticity_for(
    row: LiveRow, bundle: ConfigBundle, changes: PreviewChanges
) -> tuple[float, str]:
    beta = row.beta
    if changes.elasticity is not None:
        return float(changes.elasticity), "given"
    if beta is None:
        raise NoLiveSurface(f"the surface of {row.sku}/{row.market} carries no elasticity")
    if changes.category_prior is not None:
        old = bundle.categories.categories.get(row.sku_config.category)
        se = (row.surface.elasticity or {}).get("beta_se")
        new = posterior_elasticity(
            beta,
            float(se) if se is not None else None,
            (old.mean, old.sd) if old is not None else None,
            changes.category_prior,
        )
        return new, "category prior swapped"
    return beta, "published"


def preview(
    row: LiveRow,
    bundle: ConfigBundle,
    changes: PreviewChanges,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The surface and expected outcome a re-fit would publish with ``changes``.

    Returns:
        A JSON-ready dict: ``live`` (the published surface evaluated from now),
        ``candidate`` (the re-solved surface, its price now, evaluation), ``delta``.

    Raises:
        NoLiveSurface: the live version has no usable fit to re-solve with.
        ValueError: the changes make the guardrails inconsistent (message names them).
    """
    from pricing.guardrails import apply_guardrails
    from pricing.policy import solve_surfaces
    from service.drops import drop_horizon, guardrail_spec, sku_ladder, trusted_ladder

    now = now or datetime.now(UTC)
    if row.fit is None or row.fit_row is None:
        raise NoLiveSurface(
            f"cannot re-solve {row.sku}/{row.market}: " + "; ".join(row.notes or ["no fit"])
        )
    sku_cfg = row.sku_config
    updates = {
        k: v
        for k, v in (
            ("list_price", changes.list_price),
            ("unit_cost", changes.unit_cost),
            ("salvage_value", changes.salvage_value),
        )
        if v is not None
    }
    if updates:
        sku_cfg = SkuConfig.model_validate({**sku_cfg.model_dump(), **updates})
    rails = row.rails.merged(changes.guardrails) if changes.guardrails is not None else row.rails
    units = changes.units_left if changes.units_left is not None else row.units_left
    if units > MAX_PREVIEW_UNITS:
        raise ValueError(
            f"units_left {units} is too many to re-solve here, allowed at most "
            f"{MAX_PREVIEW_UNITS}: preview with a smaller units_left"
        )
    beta, beta_source = _elasticity_for(row, bundle, changes)
    drop = row.drop
    cost = sku_cfg.unit_cost if drop.objective == "profit" else 0.0

    # The live surface, evaluated from now under the fit's demand.
    live = row.surface
    live_hours, live_int, live_scale = _horizon_inputs(
        row, live.period_start, live.price.shape[1], timedelta(seconds=live.period_seconds)
    )
    live_t = live.cell_at(0, now)[1]
    live_eval = evaluate_surface(
        live.price,
        lambda p: _rates(row, p, live_hours, live_int, live_scale, row.beta or beta),
        units=row.units_left,
        t0=live_t,
        unit_cost=cost,
        salvage=row.sku_config.salvage_value,
    )
    live_n = min(row.units_left, live.price.shape[0] - 1)

    horizon = drop_horizon(drop, now)
    if horizon is None:
        raise NoLiveSurface(f"every window of drop {drop.id!r} has closed: nothing to price")
    spec = guardrail_spec(rails, sku_cfg, drop, horizon)
    full = np.asarray(sku_ladder(spec, rails, sku_cfg), dtype=np.float64)
    # The prices the re-fit would offer: those near the prices the fit has seen.
    ladder = trusted_ladder(full, spec, row.fit, row.fit_row, full.size)
    hours, intensity, scale = _horizon_inputs(
        row, horizon.start, horizon.periods, timedelta(seconds=horizon.period_seconds)
    )
    rates = _rates(row, ladder, hours, intensity, scale, beta)
    sol = solve_surfaces(
        rates[None], ladder[None], units, unit_cost=cost, salvage=sku_cfg.salvage_value
    )
    optimum = np.asarray(sol.price)
    guarded, codes = apply_guardrails(optimum, spec, inventory=units)
    surface = guarded[0, : units + 1]
    t_now = horizon.period_at(now)
    cand_eval = evaluate_surface(
        surface,
        lambda p: _rates(row, p, hours, intensity, scale, beta),
        units=units,
        t0=t_now,
        unit_cost=cost,
        salvage=sku_cfg.salvage_value,
    )
    n_now = min(units, surface.shape[0] - 1)
    code = int(codes[0, n_now, t_now])
    return {
        "sku": row.sku,
        "market": row.market,
        "computed_at": now.isoformat(),
        "fit_id": row.fit_id,
        "live": {
            "version": row.version,
            "price_now": float(live.price[live_n, live_t]),
            "period_start": live.period_start.isoformat(),
            "period_seconds": live.period_seconds,
            "surface": live.price.tolist(),
            **live_eval,
        },
        "candidate": {
            "price_now": float(surface[n_now, t_now]),
            "bound_by": bound_by(code),
            "optimum_now": float(optimum[0, n_now, t_now]),
            "elasticity": beta,
            "elasticity_source": beta_source,
            "guardrails": rails.model_dump(mode="json"),
            "ladder": ladder.tolist(),
            "period_start": horizon.start.isoformat(),
            "period_seconds": horizon.period_seconds,
            "surface": surface.tolist(),
            "guardrail_codes": codes[0, : units + 1].tolist(),
            **cand_eval,
        },
        "delta": {
            "price_now": float(surface[n_now, t_now]) - float(live.price[live_n, live_t]),
            "expected_revenue": cand_eval["expected_revenue"] - live_eval["expected_revenue"],
            "sell_through": cand_eval["sell_through"] - live_eval["sell_through"],
        },
        "notes": row.notes,
    }
