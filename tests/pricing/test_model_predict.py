"""ElasticityFit predictions: covariates per row and period (issue 19)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pricing import ElasticityFit, fit_elasticity
from pricing._panel_sim import simulate_demand_panel
from pricing.exceptions import InputError


@pytest.fixture(scope="module")
def promo_fit() -> ElasticityFit:
    """20 SKUs x 96 hours with a shared promotion lift of 0.5 in log demand."""
    panel, _ = simulate_demand_panel(20, 96, seed=31, promo_effect=0.5, base_rate=(3.0, 6.0))
    return fit_elasticity(panel, covariates=["promo"])


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
