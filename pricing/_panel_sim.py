"""Simulated demand panels with known elasticities (for recovery tests and benchmarks).

The panel follows the model of :mod:`pricing.model` exactly::

    log λ_it = α_i + s(h_t) + γ_i I_it + (β_i + δ_i I_it) log(p_it / p_ref_i) + θ promo_it
    D_it ~ Poisson(λ_it),   sold_it = min(D_it, stock_it),   sold_out_it = D_it >= stock_it

Elasticities are drawn per category, β_i ~ N(μ_c, τ²), so pooling has something to pool.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["PanelTruth", "simulate_demand_panel"]


class PanelTruth(NamedTuple):
    """Parameters that generated a simulated panel, one entry per SKU (sorted like the fit)."""

    alpha: np.ndarray
    elasticity: np.ndarray
    intensity_lift: np.ndarray
    intensity_shift: np.ndarray
    category_mean: dict[str, float]
    daily_profile: np.ndarray
    promo_effect: float


def simulate_demand_panel(
    n_skus: int,
    n_periods: int,
    *,
    seed: int,
    categories: dict[str, float] | None = None,
    tau: float = 0.3,
    base_rate: tuple[float, float] = (1.0, 4.0),
    price_spread: float = 0.25,
    intensity: bool = False,
    lift: float = 0.3,
    shift: float = -0.2,
    profile_amplitude: float = 0.0,
    promo_effect: float | None = None,
    stock: float | None = None,
    start: str = "2026-05-01",
    freq: str = "h",
) -> tuple[pd.DataFrame, PanelTruth]:
    """Draw a panel (one row per SKU and period) and the truth behind it.

    Args:
        n_skus, n_periods: panel size.
        seed: numpy seed.
        categories: category -> mean elasticity (default one category, -1.5).
        tau: spread of elasticities within a category.
        base_rate: range of expected units per period at the reference price.
        price_spread: half-width of the log-price variation around the reference.
        intensity: add an ``intensity`` column and its γ, δ effects.
        lift, shift: mean γ and δ (per-SKU values scatter by 0.05).
        profile_amplitude: amplitude of the shared daily profile (0: flat).
        promo_effect: add a 0/1 ``promo`` column with this shared effect.
        stock: mean units on the shelf per period; sales are censored at it.
        start, freq: period timestamps.

    Returns:
        ``(panel, truth)``; panel columns ``sku, category, period, price, quantity`` and,
        as asked, ``intensity``, ``promo``, ``sold_out``, ``demand`` (uncensored).
    """
    rng = np.random.default_rng(seed)
    categories = categories or {"all": -1.5}
    names = list(categories)
    cat = np.array(names)[rng.integers(0, len(names), n_skus)]
    mu = np.array([categories[c] for c in cat])
    beta = mu + tau * rng.standard_normal(n_skus)
    alpha = np.log(rng.uniform(*base_rate, n_skus))
    gamma = lift + 0.05 * rng.standard_normal(n_skus) if intensity else np.zeros(n_skus)
    delta = shift + 0.05 * rng.standard_normal(n_skus) if intensity else np.zeros(n_skus)
    hours = pd.date_range(start, periods=n_periods, freq=freq, tz="UTC")
    hod = hours.hour.to_numpy()
    prof = profile_amplitude * np.sin(2 * np.pi * (np.arange(24) - 9) / 24)
    prof = prof - prof.mean()
    # Prices: reference times a piecewise-constant multiplier changing every 6 periods.
    pref = rng.uniform(5.0, 50.0, n_skus)
    blocks = -(-n_periods // 6)
    mult = rng.uniform(-price_spread, price_spread, (n_skus, blocks)).repeat(6, axis=1)[
        :, :n_periods
    ]
    logp = np.log(pref)[:, None] + mult
    x = logp - logp.mean(axis=1, keepdims=True)
    eta = alpha[:, None] + prof[hod][None, :] + beta[:, None] * x
    inten = None
    if intensity:
        inten = rng.gamma(0.5, 1.0, (n_skus, n_periods))
        eta = eta + gamma[:, None] * inten + delta[:, None] * inten * x
    promo = None
    if promo_effect is not None:
        promo = (rng.uniform(size=(n_skus, n_periods)) < 0.2).astype(float)
        eta = eta + promo_effect * promo
    demand = rng.poisson(np.exp(eta))
    sku_ids = np.array([f"sku-{i:05d}" for i in range(n_skus)])
    panel = pd.DataFrame(
        {
            "sku": sku_ids.repeat(n_periods),
            "category": cat.repeat(n_periods),
            "period": np.tile(hours, n_skus),
            "price": np.exp(logp).ravel(),
            "quantity": demand.ravel().astype(float),
        }
    )
    if inten is not None:
        panel["intensity"] = inten.ravel()
    if promo is not None:
        panel["promo"] = promo.ravel()
    if stock is not None:
        shelf = rng.poisson(stock, (n_skus, n_periods)) + 1
        panel["quantity"] = np.minimum(demand, shelf).ravel().astype(float)
        panel["sold_out"] = (demand >= shelf).ravel()
        panel["demand"] = demand.ravel().astype(float)
    # The fit's alpha is at the geometric-mean price: same x centring as above.
    truth = PanelTruth(
        alpha=alpha,
        elasticity=beta,
        intensity_lift=gamma,
        intensity_shift=delta,
        category_mean=dict(categories),
        daily_profile=prof,
        promo_effect=float(promo_effect or 0.0),
    )
    return panel, truth
