"""Why a price is what it is, and what a config change would do to it (explain, preview).

Both start from what is live for one (SKU, market): the published price surface
(its elasticity row, the intensity it was solved at, the guardrail code of every
cell), the elasticity fit saved with that surface version (``fit_id`` in the
version's meta), the live config and the units left now. Nothing is written.

**Preview** re-runs the re-fit's solve stage for one row with candidate changes
(guardrail fields, an elasticity or category prior, list price, cost, salvage,
units): the same horizon (:func:`service.drops.drop_horizon`), guardrail spec and
price ladder (:func:`service.drops.guardrail_spec`, :func:`service.drops.sku_ladder`),
demand rates from the live fit and the intensity path the surface was solved with
(``explain.intensity_forecast`` when the record carries it, else the centred index
at solve time held over the horizon; see ``_horizon_inputs``), then
:func:`pricing.policy.solve_surfaces` and :func:`pricing.guardrails.apply_guardrails`.
With no change it reproduces the published surface; with a change it is what the
next re-fit on the same data would publish.

A new category prior is folded in with the Gaussian (Laplace) approximation the fit
itself rests on: the published elasticity ``β̂ ± se`` is a posterior under the old
prior ``N(μ₀, τ₀²)``; dividing that prior out leaves the likelihood's information
``1/se² − 1/τ₀²`` about ``β``, which is combined with the new prior ``N(μ₁, τ₁²)``:

.. math::

    \\beta' = \\frac{\\betâ/se^2 - \\mu_0/\\tau_0^2 + \\mu_1/\\tau_1^2}
                 {1/se^2 - 1/\\tau_0^2 + 1/\\tau_1^2}

(when the data carry no information beyond the old prior, ``β'`` is the new mean).

**Expected revenue and sell-through** of a surface are evaluated exactly, not
simulated: the distribution of units left is carried forward period by period
from (units now, period now) with Poisson demand at the surface's price in each
state, ``D ~ Poisson(λ(p(n, t), t))``, sales ``min(D, n)``.

References:
    Gallego, G. and van Ryzin, G. (1994). Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons. Management Science 40(8), 999-1020.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from pricing.guardrails import bound_by
from pricing.money import compare_money
from service.config.models import ConfigBundle, DropConfig, Guardrails, SkuConfig
from service.exceptions import DropPriceError, UnknownMarket, UnknownSku
from service.store import PriceStore, SurfaceRecord

__all__ = [
    "Evaluation",
    "LiveRow",
    "NoLiveSurface",
    "PreviewChanges",
    "evaluate_surface",
    "explain",
    "load_live_row",
    "posterior_elasticity",
    "preview",
]

MAX_PREVIEW_UNITS = 100_000
"""Largest stock a preview re-solves (the DP grows with the units left)."""

UNCONSTRAINED_GRID = (0.25, 4.0, 48)
"""The unconstrained optimum is searched on ``list_price × geomspace(0.25, 4, 48)``."""


class NoLiveSurface(DropPriceError):
    """The SKU has no published surface in that market yet (it serves its list price).

    Fix: run a re-fit (``dropprice refit``) once the drop has sales or signals; explain
    and preview need a published surface and its fit.
    """


class PreviewChanges:
    """Candidate changes for one SKU (all optional); see :func:`preview`."""

    def __init__(
        self,
        *,
        guardrails: Guardrails | None = None,
        elasticity: float | None = None,
        category_prior: tuple[float, float] | None = None,
        list_price: float | None = None,
        unit_cost: float | None = None,
        salvage_value: float | None = None,
        units_left: int | None = None,
    ) -> None:
        self.guardrails = guardrails
        self.elasticity = elasticity
        self.category_prior = category_prior
        self.list_price = list_price
        self.unit_cost = unit_cost
        self.salvage_value = salvage_value
        self.units_left = units_left


@dataclass
class LiveRow:
    """Everything live about one (SKU, market)."""

    sku: str
    market: str
    drop: DropConfig
    sku_config: SkuConfig
    rails: Guardrails
    version: str
    surface: SurfaceRecord
    units_left: int
    fit: Any | None
    fit_row: int | None
    fit_id: str | None
    reference_time: datetime
    """When the surface was solved (its intensity forecast starts there)."""
    notes: list[str] = field(default_factory=list)

    @property
    def beta(self) -> float | None:
        el = self.surface.elasticity or {}
        return float(el["beta"]) if "beta" in el else None

    @property
    def intensity_at_publish(self) -> float:
        return float((self.surface.explain or {}).get("intensity_now", 0.0) or 0.0)


class Evaluation(dict[str, Any]):
    """Expected outcome of a surface from (units now, period now) (a JSON-ready dict)."""


# -- fits ---------------------------------------------------------------------------------

_FITS: OrderedDict[str, Any] = OrderedDict()
_FITS_LOCK = threading.Lock()


def _load_fit(client: Any, fit_id: str) -> Any | None:
    """The saved :class:`pricing.model.ElasticityFit` ``fit_id`` (cached per process)."""
    with _FITS_LOCK:
        if fit_id in _FITS:
            _FITS.move_to_end(fit_id)
            return _FITS[fit_id]
    from service.store.refit_state import RefitState

    fit = RefitState(client).load_fit(fit_id)
    if fit is None:
        return None
    with _FITS_LOCK:
        _FITS[fit_id] = fit
        while len(_FITS) > 4:
            _FITS.popitem(last=False)
    return fit


def _reference_time(client: Any, surface: SurfaceRecord, published_at: datetime | None) -> datetime:
    explain = surface.explain or {}
    for key in ("computed_at", "now"):
        if explain.get(key):
            return datetime.fromisoformat(str(explain[key]))
    refit_id = explain.get("refit_id")
    if refit_id:
        from service.store.refit_state import RefitState

        record = RefitState(client).get_record(str(refit_id))
        if record is not None and record.started_at:
            return datetime.fromisoformat(record.started_at)
    return published_at or datetime.now(UTC)


def load_live_row(
    store: PriceStore,
    bundle: ConfigBundle,
    sku: str,
    market: str | None,
    *,
    units_left: int | None = None,
) -> LiveRow:
    """Collect the live surface, fit, config and units of ``sku`` in ``market``.

    Raises:
        UnknownSku: no drop sells ``sku``.
        UnknownMarket: ``market`` is not one of the SKU's, or is needed and missing.
        NoLiveSurface: nothing is published for the pair yet.
    """
    found = bundle.find_sku(sku)
    if found is None:
        raise UnknownSku(f"no drop in the live config sells SKU {sku!r}")
    drop, sku_cfg = found
    markets = sorted(sku_cfg.inventory)
    if market is None:
        if len(markets) != 1:
            raise UnknownMarket(f"SKU {sku!r} is sold in {markets}: pass ?market=one of them")
        market = markets[0]
    if market not in sku_cfg.inventory:
        raise UnknownMarket(f"SKU {sku!r} is not sold in market {market!r}, allowed {markets}")
    live = store.get_surface(sku, market)
    if live is None:
        raise NoLiveSurface(
            f"SKU {sku!r} has no published surface in {market!r} yet: it serves its list "
            f"price {sku_cfg.list_price:g}; run a re-fit first"
        )
    version, surface = live
    info = next((v for v in store.list_versions() if v.version == version), None)
    fit_id = str(info.meta.get("fit_id")) if info is not None and info.meta.get("fit_id") else None
    notes: list[str] = []
    fit = row = None
    if fit_id is not None:
        fit = _load_fit(store, fit_id)
        if fit is None:
            notes.append(f"the fit {fit_id} of version {version} is no longer stored")
        else:
            keys = [tuple(k) for k in fit.keys]
            row = keys.index((sku, market)) if (sku, market) in keys else None
            if row is None:
                notes.append(f"the fit {fit_id} has no row for {sku}/{market}")
    else:
        notes.append(f"version {version} names no fit (published without a re-fit)")
    units = units_left
    if units is None:
        got = store.get_inventory(sku, market)
        units = int(got) if got is not None else int(sku_cfg.inventory[market])
    return LiveRow(
        sku=sku,
        market=market,
        drop=drop,
        sku_config=sku_cfg,
        rails=bundle.guardrails_for(drop, sku_cfg, market),
        version=version,
        surface=surface,
        units_left=max(0, units),
        fit=fit,
        fit_row=row,
        fit_id=fit_id,
        reference_time=_reference_time(
            store, surface, info.published_at if info is not None else None
        ),
        notes=notes,
    )


# -- demand and evaluation ---------------------------------------------------------------


def posterior_elasticity(
    beta: float,
    se: float | None,
    old_prior: tuple[float, float] | None,
    new_prior: tuple[float, float],
) -> float:
    """Swap the category prior under a Gaussian posterior (see the module docstring).

    Example:
        >>> round(posterior_elasticity(-2.0, 0.5, (-1.5, 1.0), (-1.5, 1.0)), 6)
        -2.0
    """
    mu1, tau1 = new_prior
    if se is None or not math.isfinite(se) or se <= 0:
        return mu1
    prec = 1.0 / se**2
    num = beta * prec
    if old_prior is not None:
        mu0, tau0 = old_prior
        prec -= 1.0 / tau0**2
        num -= mu0 / tau0**2
    if prec <= 1e-12:  # the data said nothing beyond the old prior
        return mu1
    return (num + mu1 / tau1**2) / (prec + 1.0 / tau1**2)


def _horizon_inputs(
    row: LiveRow, start: datetime, periods: int, period: timedelta
) -> tuple[np.ndarray, np.ndarray, float]:
    """Hours of day ``[T]``, the intensity the fit sees ``[T]`` and the rate scale.

    The intensity path is the one the surface was solved with when its record carries
    it (``explain.intensity_forecast``, one value per surface period; periods past its
    end hold the last value). Otherwise it is rebuilt from what the record does carry,
    ``intensity_now − intensity_mean`` (the index at solve time, centred as the fit
    was) held over the horizon: exact when the index is demand-driven (sales, velocity;
    the re-fit holds those at their usual level), and an upper bound while a creator
    announcement's part of it is still decaying.
    """
    explain = row.surface.explain or {}
    starts = [start + period * t for t in range(periods)]
    hours = np.array([ts.astimezone(UTC).hour for ts in starts])
    scale = (period / timedelta(hours=1)) / (getattr(row.fit, "period_hours", None) or 1.0)
    stored = explain.get("intensity_forecast")
    if isinstance(stored, list) and stored:
        path = np.asarray(stored, dtype=np.float64)
        origin = row.surface.period_start
        step = row.surface.period_seconds
        idx = [
            min(max(math.floor((ts - origin).total_seconds() / step), 0), path.size - 1)
            for ts in starts
        ]
        return hours, path[idx], scale
    centre = float(explain.get("intensity_mean", 0.0) or 0.0)
    return hours, np.full(periods, row.intensity_at_publish - centre), scale


def _rates(
    row: LiveRow,
    prices: np.ndarray,
    hours: np.ndarray,
    intensity: np.ndarray,
    scale: float,
    beta: float,
) -> np.ndarray:
    """Expected units per period ``[T, K]`` of the row at ``prices [K]``."""
    from pricing.model import DemandParams

    fit, i = row.fit, row.fit_row
    assert fit is not None and i is not None
    s_all = len(fit.keys)
    full_prices = np.ones((s_all, prices.size))
    full_prices[i] = prices
    full_int = np.zeros((s_all, intensity.size))
    full_int[i] = intensity
    p = fit.params
    elasticity = np.array(p.elasticity, dtype=float, copy=True)
    elasticity[i] = beta
    params = DemandParams(p.alpha, elasticity, p.intensity_lift, p.intensity_shift)
    # The re-fit's own rates (posterior expected demand), so a preview with no change
    # reproduces the published surface.
    with np.errstate(over="ignore", invalid="ignore"):
        rates = np.asarray(
            fit.posterior_rates(full_prices, intensity=full_int, hours=hours, params=params)
        )
    return np.asarray(rates[i], dtype=np.float64) * scale


def evaluate_surface(
    price: np.ndarray,
    rate_of: Any,
    *,
    units: int,
    t0: int,
    unit_cost: float = 0.0,
    salvage: float = 0.0,
) -> Evaluation:
    """Expected revenue, units sold and sell-through of following ``price`` from (units, t0).

    Args:
        price: ``[N+1, T]`` surface (row = units left).
        rate_of: ``rate_of(prices [K]) -> [T, K]`` expected demand per period.
        units: units left now (rows above ``N`` use row ``N``).
        t0: current period (clamped to ``[0, T-1]``).
        unit_cost, salvage: for the expected profit and leftover value.

    Returns:
        ``expected_revenue``, ``expected_units_sold``, ``sell_through`` (of ``units``),
        ``expected_units_left`` and ``expected_value`` (revenue − cost·units + salvage·left).
    """
    from scipy.special import gammaln

    from pricing.policy import demand_truncation

    price = np.asarray(price, dtype=np.float64)
    rows, cols = price.shape
    t0 = min(max(t0, 0), cols - 1)
    n0 = max(0, int(units))
    table = price[np.minimum(np.arange(n0 + 1), rows - 1)]  # [n0+1, T]
    uniq = np.unique(table[:, t0:])
    rates_u = np.asarray(rate_of(uniq))  # [T, U]
    idx = np.searchsorted(uniq, table)
    pi = np.zeros(n0 + 1)
    pi[n0] = 1.0
    revenue = sold = 0.0
    d_max = demand_truncation(float(np.max(rates_u[t0:])) if rates_u.size else 0.0, max(n0, 1))
    d = np.arange(d_max + 1)
    n = np.arange(n0 + 1)
    for t in range(t0, cols):
        lam = rates_u[t, np.clip(idx[:, t], 0, uniq.size - 1)]  # [n0+1]
        with np.errstate(divide="ignore"):
            log_lam = np.where(lam > 0, np.log(np.maximum(lam, 1e-300)), -np.inf)
        logp = d[None, :] * log_lam[:, None] - lam[:, None] - gammaln(d + 1)[None, :]
        logp[:, 0] = -lam
        pmf = np.exp(logp)  # [n0+1, d_max+1]
        below = d[None, :] < n[:, None]
        p_below = np.where(below, pmf, 0.0)
        tail = np.clip(1.0 - p_below.sum(axis=1), 0.0, 1.0)
        e_sales = (p_below * d[None, :]).sum(axis=1) + n * tail
        revenue += float(np.sum(pi * table[:, t] * e_sales))
        sold += float(np.sum(pi * e_sales))
        nxt = np.zeros_like(pi)
        for k in range(min(d_max, n0) + 1):
            mass = pi[k:] * p_below[k:, k] if k < n0 + 1 else 0.0
            nxt[: n0 + 1 - k] += mass
        nxt[0] += float(np.sum(pi * tail))
        pi = nxt
    left = float(np.sum(pi * n))
    return Evaluation(
        expected_revenue=revenue,
        expected_units_sold=sold,
        sell_through=(sold / n0) if n0 else 0.0,
        expected_units_left=left,
        expected_value=revenue - unit_cost * sold + salvage * left,
        units_now=n0,
        period_now=t0,
    )


# -- preview -------------------------------------------------------------------------------


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
    from service.drops import drop_horizon, guardrail_spec, sku_ladder

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
    ladder = np.asarray(sku_ladder(spec, rails, sku_cfg), dtype=np.float64)
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


# -- explain -------------------------------------------------------------------------------


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
