"""The re-fit's solve and validate stages: price surfaces per drop, then the checks.

Solve, per drop: the SKU's ladder (guardrail ladder, else a grid between floor and
ceiling, :mod:`service.drops`), units left now, the periods left in the current or next
window, demand rates from the fit and the intensity forecast (the exogenous index
decayed from its value now, centred as in the fit, :mod:`service.refit.exogenous`);
:func:`pricing.sharding.solve_sharded` then :func:`pricing.guardrails.apply_guardrails`.

Validate: every published cell finite, positive, inside floor/ceiling/cost and on the
ladder; a price change against the live price beyond the approval band is held for an
operator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.config.models import ConfigBundle, DropConfig, Guardrails, SkuConfig
from service.drops import (
    Horizon,
    drop_horizon,
    drop_rates,
    grid_ladders,
    guardrail_spec,
    sku_ladder,
    trusted_ladder,
)
from service.refit.exogenous import Regressor
from service.store import SurfaceRecord

__all__ = ["Solved", "solve_drops", "surface_problem", "validate_surfaces"]

Pair = tuple[str, str]


@dataclass
class Solved:
    """The surfaces a re-fit proposes, with what validation needs of each."""

    surfaces: dict[Pair, SurfaceRecord] = field(default_factory=dict)
    now_price: dict[Pair, float] = field(default_factory=dict)
    """The price each surface serves now, at units left now."""
    rails: dict[Pair, tuple[Guardrails, SkuConfig]] = field(default_factory=dict)


@dataclass
class _DropRows:
    """The fit rows of one drop that get a surface, with their guardrails and ladders."""

    rows: list[int] = field(default_factory=list)
    specs: list[Any] = field(default_factory=list)
    ladders: list[np.ndarray] = field(default_factory=list)
    meta: list[tuple[Pair, SkuConfig, Guardrails]] = field(default_factory=list)
    inventory: list[int] = field(default_factory=list)
    grid_rows: list[int] = field(default_factory=list)
    """Rows without a guardrail ladder: their grids are built together."""


def solve_drops(
    fit: Any,
    bundle: ConfigBundle,
    regressor: Regressor,
    replace: Mapping[int, float],
    inventory_now: Mapping[Pair, int],
    now: datetime,
    frozen: frozenset[str],
    *,
    refit_id: str,
    reasons: list[str],
    devices: Sequence[Any],
) -> Solved:
    """Solve every drop's surfaces from the fit (see the module docstring).

    Args:
        fit: the new fit; ``replace`` maps its rejected rows to the elasticity used.
        bundle: the config the re-fit runs on.
        regressor: the intensity regressor of the fit stage.
        inventory_now: units left per pair (the config's inventory where absent).
        now: the re-fit's time; each drop prices its open or next window.
        frozen: SKUs left alone (their drop's window is open).
        refit_id: written into each surface's ``explain``.
        reasons: why a pair got no surface is appended here.
        devices: the devices the DP is sharded over.
    """
    solved = Solved()
    table = fit.table  # a computed property: build it once
    betas = np.asarray(table["elasticity"], dtype=float)
    extra = {
        name: np.asarray(table[col], dtype=float)
        for name, col in (
            ("beta_se", "elasticity_se"),
            ("delta", "intensity_shift"),
            ("gamma", "intensity_lift"),
        )
        if col in table.columns
    }
    row_of = {tuple(k): i for i, k in enumerate(fit.keys)}
    for drop in bundle.drops:
        horizon = drop_horizon(drop, now)
        if horizon is None:
            continue
        rows = _drop_rows(drop, bundle, horizon, row_of, inventory_now, frozen, reasons)
        if rows.rows:
            _solve_drop(
                solved, fit, bundle, drop, horizon, rows, regressor, replace, now,
                refit_id=refit_id, reasons=reasons, devices=devices, betas=betas, extra=extra,
            )  # fmt: skip
    return solved


def _drop_rows(
    drop: DropConfig,
    bundle: ConfigBundle,
    horizon: Horizon,
    row_of: Mapping[tuple[Any, ...], int],
    inventory_now: Mapping[Pair, int],
    frozen: frozenset[str],
    reasons: list[str],
) -> _DropRows:
    """The drop's fitted (SKU, market) rows with their guardrail specs and ladders."""
    out = _DropRows()
    drop_rails = bundle.defaults.guardrails.merged(drop.guardrails)
    for sku in drop.skus:
        if sku.sku in frozen:
            continue
        rails = drop_rails.merged(sku.guardrails)
        for market in drop.markets:
            i = row_of.get((sku.sku, market))
            if i is None:
                continue
            try:
                spec = guardrail_spec(rails, sku, drop, horizon)
                if spec.ladder is None:  # filled for all grid rows at once below
                    ladder = np.empty(0)
                    out.grid_rows.append(len(out.rows))
                else:
                    ladder = sku_ladder(spec, rails, sku)
            except ValueError as exc:
                reasons.append(f"{sku.sku}/{market}: guardrails unusable: {exc}")
                continue
            units = inventory_now.get((sku.sku, market), sku.inventory.get(market, 0))
            out.rows.append(i)
            out.specs.append(spec)
            out.ladders.append(ladder)
            out.meta.append(((sku.sku, market), sku, rails))
            out.inventory.append(max(0, int(units)))
    if out.grid_rows:
        grids = grid_ladders(
            [out.specs[j] for j in out.grid_rows],
            [out.meta[j][2] for j in out.grid_rows],
            [out.meta[j][1] for j in out.grid_rows],
        )
        for j, grid in zip(out.grid_rows, grids, strict=True):
            out.ladders[j] = grid
    return out


def _solve_drop(
    solved: Solved,
    fit: Any,
    bundle: ConfigBundle,
    drop: DropConfig,
    horizon: Horizon,
    rows: _DropRows,
    regressor: Regressor,
    replace: Mapping[int, float],
    now: datetime,
    *,
    refit_id: str,
    reasons: list[str],
    devices: Sequence[Any],
    betas: np.ndarray,
    extra: Mapping[str, np.ndarray],
) -> None:
    """Solve one drop's rows and add their surfaces to ``solved``."""
    from pricing.guardrails import apply_guardrails
    from pricing.intensity import forecast_intensity
    from pricing.sharding import solve_sharded

    meta = rows.meta
    k = max(len(x) for x in rows.ladders)
    prices = np.stack(
        [
            trusted_ladder(x, spec, fit, i, k)
            for x, spec, i in zip(rows.ladders, rows.specs, rows.rows, strict=True)
        ]
    )
    starts = horizon.starts()
    hours = np.array([ts.astimezone(UTC).hour for ts in starts])
    offsets = np.array([max(0.0, (ts - now).total_seconds() / 3600) for ts in starts])
    cur = np.array([regressor.current.get(m[0], 0.0) for m in meta])
    centre = np.array([regressor.mean.get(m[0], 0.0) for m in meta])
    # The fit's regressor is the exogenous index centred per pair; the window's path is
    # that index decaying with its half-life from its value now.
    intensity = forecast_intensity(cur, offsets, regressor.half_life_h) - centre[:, None]
    # The fit's rates are per panel period (an hour); the drop's periods may differ.
    scale = horizon.period_hours / (fit.period_hours or 1.0)
    rates = drop_rates(fit, rows.rows, prices, intensity, hours, replace) * scale
    good = np.all(np.isfinite(rates), axis=(1, 2)) & np.all(rates >= 0, axis=(1, 2))
    for bad_row in np.flatnonzero(~good):
        sku, market = meta[int(bad_row)][0]
        reasons.append(f"{sku}/{market}: demand not finite after the fit; keeps its live surface")
    keep = np.flatnonzero(good)
    if keep.size == 0:
        return
    inv = np.asarray(rows.inventory)[keep]
    cost = np.array([meta[j][1].unit_cost if drop.objective == "profit" else 0.0 for j in keep])
    salvage = np.array([meta[j][1].salvage_value for j in keep])
    price_surface = solve_sharded(rates[keep], prices[keep], inv, cost, salvage, devices)
    guarded, codes = apply_guardrails(price_surface, [rows.specs[j] for j in keep], inventory=inv)
    t_now = horizon.period_at(now)
    for pos, j_keep in enumerate(keep):
        j = int(j_keep)
        pair, sku_cfg, rails = meta[j]
        n = int(inv[pos])
        i = rows.rows[j]
        beta = replace.get(i, betas[i])
        solved.surfaces[pair] = SurfaceRecord(
            price=np.ascontiguousarray(guarded[pos, : n + 1]),
            period_start=horizon.start,
            period_seconds=horizon.period_seconds,
            guardrail_codes=np.ascontiguousarray(codes[pos, : n + 1]),
            currency=bundle.currency_for(sku_cfg),
            elasticity={
                "beta": float(beta),
                **{k: float(v[i]) for k, v in extra.items() if math.isfinite(v[i])},
            },
            explain={
                "refit_id": refit_id,
                "objective": drop.objective,
                "drop": drop.id,
                "intensity_now": float(cur[j]),
                "intensity_mean": float(centre[j]),
                "intensity_forecast": [float(v) for v in intensity[j]],
                "elasticity_replaced": i in replace,
            },
        )
        solved.now_price[pair] = float(guarded[pos, n, t_now])
        solved.rails[pair] = (rails, sku_cfg)


def validate_surfaces(
    solved: Solved, live: Mapping[Pair, float], reasons: list[str]
) -> tuple[list[Pair], list[dict[str, Any]]]:
    """Split the proposed surfaces into those to publish and the changes to hold.

    Args:
        solved: from :func:`solve_drops`.
        live: the price each pair serves now (:meth:`PriceStore.live_prices`); the list
            price where it serves none.
        reasons: why a surface is dropped or held is appended here.

    Returns:
        ``(publish, held)``: pairs that pass, and for each held one its change
        (``sku``, ``market``, ``live_price``, ``new_price``, ``change_pct``, ``band_pct``).
    """
    publish: list[Pair] = []
    held: list[dict[str, Any]] = []
    for pair, surf in solved.surfaces.items():
        rails, sku = solved.rails[pair]
        problem = surface_problem(np.asarray(surf.price), rails, sku)
        if problem:
            reasons.append(f"{pair[0]}/{pair[1]}: {problem}; keeps its live surface")
            continue
        band = rails.approval_band_pct
        old = live.get(pair) or sku.list_price
        new = solved.now_price[pair]
        change = 100.0 * (new - old) / old
        if band is not None and abs(change) > band + 1e-9:
            held.append(
                {
                    "sku": pair[0],
                    "market": pair[1],
                    "live_price": round(old, 4),
                    "new_price": round(new, 4),
                    "change_pct": round(change, 2),
                    "band_pct": band,
                }
            )
            reasons.append(
                f"{pair[0]}/{pair[1]}: price would move {change:+.1f}% ({old:.2f} -> "
                f"{new:.2f}), beyond the approval band of {band}%: held for an operator"
            )
            continue
        publish.append(pair)
    return publish, held


def surface_problem(price: np.ndarray, rails: Guardrails, sku: SkuConfig) -> str | None:
    """Why a surface must not be published (the first problem found), ``None`` if sound."""
    if not np.all(np.isfinite(price)):
        return "surface has NaN or inf cells"
    if np.any(price <= 0):
        return f"surface has non-positive prices (min {price.min():.4g})"
    tol = 1e-6
    if rails.floor is not None and price.min() < rails.floor - tol:
        return f"surface price {price.min():.4g} below floor {rails.floor}"
    if rails.ceiling is not None and price.max() > rails.ceiling + tol:
        return f"surface price {price.max():.4g} above ceiling {rails.ceiling}"
    if not rails.allow_below_cost and price.min() < sku.unit_cost - tol:
        return f"surface price {price.min():.4g} below unit cost {sku.unit_cost}"
    if rails.ladder is not None:
        ladder = np.asarray(rails.ladder)
        off = np.min(np.abs(price.reshape(-1, 1) - ladder[None, :]), axis=1) > tol
        if off.any():
            return f"surface price {price.reshape(-1)[off][0]:.4g} is not on the ladder"
    return None
