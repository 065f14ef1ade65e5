"""ElasticityFit predictions: covariates per row and period (issue 19)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricing import ElasticityFit, fit_elasticity
from pricing._panel_sim import simulate_demand_panel
from pricing.exceptions import InputError
from pricing.validation import predict_cells


@pytest.fixture(scope="module")
def promo_fit() -> ElasticityFit:
    """20 SKUs x 96 hours with a shared promotion lift of 0.5 in log demand."""
    panel, _ = simulate_demand_panel(20, 96, seed=31, promo_effect=0.5, base_rate=(3.0, 6.0))
    return fit_elasticity(panel, covariates=["promo"], per_row_covariates=False)


def test_promotion_on_predicts_more_by_the_fitted_effect(promo_fit: ElasticityFit) -> None:
    fit = promo_fit
    effect = fit.covariate_effects["promo"][0]
    assert effect == pytest.approx(0.5, abs=0.1)  # recovered, so "on" means something
    s = len(fit.keys)
    prices = np.exp(fit.log_pref)[:, None] * np.array([[0.9, 1.0, 1.1]])
    off = fit.demand_rates(prices, hours=np.arange(24))
    on = fit.demand_rates(prices, hours=np.arange(24), covariates={"promo": np.ones((s, 24))})
    np.testing.assert_allclose(on / off, math.exp(effect), rtol=1e-6)
    # Omitting the covariates is the same as passing them all at 0 (documented).
    zero = fit.demand_rates(prices, hours=np.arange(24), covariates={"promo": 0.0})
    np.testing.assert_allclose(zero, off)


def test_covariates_vary_by_row_and_period(promo_fit: ElasticityFit) -> None:
    fit = promo_fit
    effect = fit.covariate_effects["promo"][0]
    s = len(fit.keys)
    prices = np.exp(fit.log_pref)[:, None]
    promo = np.zeros((s, 6))
    promo[0, 2:4] = 1.0  # row 0 on promotion in periods 2 and 3 only
    rates = fit.demand_rates(prices, covariates={"promo": promo})  # T from the covariates
    assert rates.shape == (s, 6, 1)
    ratio = rates[..., 0] / rates[:, :1, 0]
    np.testing.assert_allclose(ratio, np.exp(effect * promo), rtol=1e-6)
    # A per-row column broadcasts over periods, a per-period vector over rows.
    per_row = fit.demand_rates(prices, hours=np.arange(4), covariates={"promo": promo[:, 2:3]})
    per_period = fit.demand_rates(prices, hours=np.arange(4), covariates={"promo": promo[0, :4]})
    assert per_row.shape == per_period.shape == (s, 4, 1)
    base = fit.demand_rates(prices, hours=np.arange(4))
    np.testing.assert_allclose(per_row[0] / base[0], math.exp(effect), rtol=1e-6)
    np.testing.assert_allclose(per_row[1:], base[1:], rtol=1e-6)
    np.testing.assert_allclose(per_period[:, 2:, 0] / base[:, 2:, 0], math.exp(effect), rtol=1e-6)


def test_posterior_rates_and_expected_demand_take_covariates(promo_fit: ElasticityFit) -> None:
    fit = promo_fit
    effect = fit.covariate_effects["promo"][0]
    s = len(fit.keys)
    prices = np.exp(fit.log_pref)[:, None]
    off = fit.posterior_rates(prices, hours=np.arange(3))
    on = fit.posterior_rates(prices, hours=np.arange(3), covariates={"promo": 1.0})
    np.testing.assert_allclose(on / off, math.exp(effect), rtol=1e-6)
    sku = fit.keys[0][0]
    pref = float(np.exp(fit.log_pref[0]))
    both = fit.expected_demand(sku, pref, period=12, covariates={"promo": [0.0, 1.0]})
    assert isinstance(both, np.ndarray) and both.shape == (2,)
    assert both[1] / both[0] == pytest.approx(math.exp(effect), rel=1e-9)
    assert both[0] == pytest.approx(fit.expected_demand(sku, pref, period=12), rel=1e-12)
    assert s == len(fit.table)


def test_omitted_or_unknown_covariate_is_an_error(promo_fit: ElasticityFit) -> None:
    fit = promo_fit
    s = len(fit.keys)
    prices = np.exp(fit.log_pref)[:, None]
    with pytest.raises(InputError, match=r"missing.*covariates=None"):
        fit.demand_rates(prices, covariates={})
    with pytest.raises(InputError, match="unknown covariate"):
        fit.demand_rates(prices, covariates={"promo": 1.0, "display": 1.0})
    with pytest.raises(InputError, match="does not broadcast"):
        fit.demand_rates(prices, hours=np.arange(4), covariates={"promo": np.ones((s, 3))})
    with pytest.raises(InputError, match="missing"):
        fit.expected_demand(fit.keys[0][0], 10.0, covariates={})
    with pytest.raises(InputError, match="unknown covariate"):
        fit.expected_demand(fit.keys[0][0], 10.0, covariates={"promo": 1, "feature": 0})


# ---------------------------------------------------------------- extrapolation


@pytest.fixture(scope="module")
def steep_fit() -> ElasticityFit:
    """The issue's shape: elasticity about -11.5 fitted on prices from -13 % to +5 %."""
    rng = np.random.default_rng(5)
    rows = []
    for k in range(4):
        for t in range(200):
            rel = rng.uniform(0.87, 1.05)
            rows.append((f"sku-{k}", t, round(10.0 * rel, 4), rng.poisson(3.0 * rel**-11.5)))
    panel = pd.DataFrame(rows, columns=["sku", "period", "price", "quantity"])
    return fit_elasticity(panel, pooling=False)


def test_fit_records_each_rows_price_range(steep_fit: ElasticityFit, tmp_path: Path) -> None:
    lo, hi = np.exp(steep_fit.log_price_range).T
    assert np.all((lo >= 8.7) & (lo < 8.8) & (hi <= 10.5) & (hi > 10.4))
    back = ElasticityFit.load(steep_fit.save(tmp_path / "fit"))
    np.testing.assert_array_equal(back.log_price_range, steep_fit.log_price_range)


def test_extrapolation_bound_keeps_a_deep_markdown_finite(steep_fit: ElasticityFit) -> None:
    fit = steep_fit
    assert np.all((fit.params.elasticity < -10) & (fit.params.elasticity > -13))
    pref = np.exp(fit.log_pref)[:, None]
    level = fit.demand_rates(pref)[:, 0, 0]
    deep = pref * 0.18  # 82 % off
    carried = fit.demand_rates(deep)[:, 0, 0]
    assert np.all(carried > 1e6 * level)  # no prior (unpooled): the default carries it
    bounded = fit.demand_rates(deep, extrapolation=0.5)[:, 0, 0]
    # The bound: demand at the lowest price seen minus half the observed log range.
    lo, hi = fit.log_price_range.T
    edge = np.exp(lo - 0.5 * (hi - lo))[:, None]
    np.testing.assert_allclose(bounded, fit.demand_rates(edge)[:, 0, 0], rtol=1e-9)
    # Stated bound: at most 20x the level at p_ref (the carried curve gives ~10^8 x).
    assert np.all(bounded < 20 * level) and np.all(bounded > level)
    # Inside the widened range nothing changes; beyond it the curve is flat.
    inside = pref * np.array([[0.9, 1.0, 1.04]])
    np.testing.assert_allclose(
        fit.demand_rates(inside, extrapolation=0.5), fit.demand_rates(inside), rtol=1e-12
    )
    flat = fit.demand_rates(pref * np.array([[0.5, 0.18, 0.05]]), extrapolation=0.5)
    np.testing.assert_allclose(flat / flat[..., :1], 1.0, rtol=1e-9)
    # The other prediction methods take the same bound.
    post = fit.posterior_rates(deep, extrapolation=0.5)[:, 0, 0]
    assert np.all(post < 20 * level * np.exp(0.5))
    one = fit.expected_demand(fit.keys[0][0], float(deep[0, 0]), extrapolation=0.5)
    assert one == pytest.approx(float(bounded[0]), rel=1e-9)
    with pytest.raises(InputError, match="extrapolation must be"):
        fit.demand_rates(deep, extrapolation=-1.0)


def test_default_prediction_far_below_the_prices_seen_follows_the_category() -> None:
    """Fit on prices within ±10 %, predict at -50 %.

    The bound: by default a price beyond the seen range is predicted from the demand at
    the nearest seen price times ``(p / p_edge)^μ_c``, ``μ_c`` the category's elasticity
    (the row's prior mean). Here, for a row fitted at about -11.5 in a category near -2,
    that is at most 15x its level at ``p_ref``; the fitted curve carried on gives more
    than 1,000x. The posterior mean widens with the distance by ``exp(½ τ² x_out²)``.
    """
    rng = np.random.default_rng(11)
    betas = np.append(rng.normal(-2.0, 0.3, 20), -11.5)
    rows = []
    for k, beta in enumerate(betas):
        for t in range(150):
            rel = rng.uniform(0.9, 1.1)
            rows.append((f"sku-{k:02d}", t, round(10.0 * rel, 4), rng.poisson(5.0 * rel**beta)))
    panel = pd.DataFrame(rows, columns=["sku", "period", "price", "quantity"])
    fit = fit_elasticity(panel)
    steep = fit.keys.index(("sku-20", None))
    assert fit.params.elasticity[steep] < -9.0  # measured precisely: it keeps its slope
    mu_c = fit.prior_mean[steep]
    assert -2.5 < mu_c < -1.5
    pref = np.exp(fit.log_pref)[:, None]
    level = fit.demand_rates(pref)[:, 0, 0]
    half = np.full_like(pref, 5.0)  # -50 % of the list price 10
    carried = fit.demand_rates(half, extrapolation=None)[:, 0, 0]
    assert carried[steep] > 1000 * level[steep]
    default = fit.demand_rates(half)[:, 0, 0]
    p_min = np.exp(fit.log_price_range[:, :1])
    at_edge = fit.demand_rates(p_min)[:, 0, 0]
    np.testing.assert_allclose(default, at_edge * (5.0 / p_min[:, 0]) ** fit.prior_mean, rtol=1e-9)
    assert default[steep] < 15 * level[steep]
    # The posterior widens with the distance beyond the seen prices (prior sd τ).
    post = fit.posterior_rates(half)[:, 0, 0]
    inside = fit.posterior_rates(p_min)[:, 0, 0] / at_edge
    x_out = np.log(5.0 / p_min[:, 0])
    widen = np.exp(0.5 * np.minimum(fit.prior_sd**2 * x_out**2, 1.0))
    assert np.all(post / default > inside * 0.999)
    assert np.all(post / default <= np.exp(0.5) + 1e-9) and np.any(widen > 1.01)
    # The cell-wise predictions of the held-out scores use the same default.
    cells = panel.iloc[[steep * 150]].assign(price=5.0)
    np.testing.assert_allclose(predict_cells(fit, cells), default[steep], rtol=1e-9)
