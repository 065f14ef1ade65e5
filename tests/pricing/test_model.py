"""pricing.model: recovery, GLM equivalence, censoring, pooling, warm start, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import ElasticityFit, fit_elasticity
from pricing._panel_sim import simulate_demand_panel
from pricing.exceptions import InputError
from pricing.model.likelihood import (
    _cell_terms,
    _Data,
    _log_survival,
    _log_survival_counts,
    _Static,
)


@pytest.fixture
def x64() -> Iterator[None]:
    """Run one test in float64, then restore the process-wide setting."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def _median_abs_error(fit: ElasticityFit, truth: np.ndarray) -> float:
    return float(np.median(np.abs(fit.params.elasticity - truth)))


# ---------------------------------------------------------------- recovery


def test_full_model_recovers_known_parameters(x64: None) -> None:
    """Elasticities, intensity terms, daily profile and promo effect, on 100 SKUs x 168 h."""
    panel, truth = simulate_demand_panel(
        100,
        168,
        seed=11,
        intensity=True,
        profile_amplitude=0.6,
        promo_effect=0.4,
        base_rate=(3.0, 8.0),
        tau=0.4,
    )
    fit = fit_elasticity(panel, intensity="intensity", covariates=["promo"], categories="category")
    assert fit.converged
    # Stated tolerances: median |error| of elasticities < 0.2, of lifts < 0.1, of shifts
    # (an interaction, weakly identified per SKU) < 0.2, and their average within 0.05.
    assert _median_abs_error(fit, truth.elasticity) < 0.2
    assert np.median(np.abs(fit.params.intensity_lift - truth.intensity_lift)) < 0.1
    assert np.median(np.abs(fit.params.intensity_shift - truth.intensity_shift)) < 0.2
    assert abs(np.mean(fit.params.intensity_shift) - np.mean(truth.intensity_shift)) < 0.05
    assert np.max(np.abs(fit.daily_profile - truth.daily_profile)) < 0.05
    promo, promo_se = fit.covariate_effects["promo"]
    assert abs(promo - 0.4) < 3 * promo_se + 0.01
    # Laplace standard errors are calibrated: about 95 % of |z| below 1.96.
    z = (fit.params.elasticity - truth.elasticity) / fit.elasticity_se
    assert 0.85 < np.mean(np.abs(z) < 1.96) <= 1.0


def test_float32_and_float64_agree() -> None:
    panel, _ = simulate_demand_panel(40, 72, seed=3, intensity=True, profile_amplitude=0.4)
    f32 = fit_elasticity(panel, intensity="intensity")
    assert f32.dtype == "float32" and f32.converged
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        f64 = fit_elasticity(panel, intensity="intensity")
    finally:
        jax.config.update("jax_enable_x64", before)
    assert f64.dtype == "float64" and f64.converged
    np.testing.assert_allclose(f32.params.elasticity, f64.params.elasticity, atol=2e-3)
    np.testing.assert_allclose(f32.elasticity_se, f64.elasticity_se, rtol=2e-3)


# ---------------------------------------------------------------- statsmodels equivalence


def test_no_prior_fit_matches_statsmodels_poisson_glm_per_sku(x64: None) -> None:
    panel, _ = simulate_demand_panel(12, 72, seed=5, intensity=True)
    panel["period"] = np.tile(np.arange(72), 12)  # numeric periods: no daily profile
    fit = fit_elasticity(panel, intensity="intensity", pooling=False)
    assert fit.converged and fit.daily_profile is None
    for i, (sku, grp) in enumerate(panel.groupby("sku", sort=True)):
        assert fit.keys[i] == (sku, None)
        x = np.log(grp["price"]) - np.log(grp["price"]).mean()
        design = np.column_stack([np.ones(len(grp)), x, grp["intensity"], x * grp["intensity"]])
        ref = sm.GLM(grp["quantity"].to_numpy(), design, family=sm.families.Poisson()).fit(
            tol=1e-12
        )
        mine = [
            fit.params.alpha[i],
            fit.params.elasticity[i],
            fit.params.intensity_lift[i],
            fit.params.intensity_shift[i],
        ]
        np.testing.assert_allclose(mine, ref.params, atol=1e-4)
        np.testing.assert_allclose(np.sqrt(np.diag(fit.param_cov[i])), ref.bse, rtol=1e-4)


def test_shared_covariate_matches_one_stacked_statsmodels_glm(x64: None) -> None:
    """Per-SKU intercepts and slopes plus one shared promo effect = one big GLM."""
    panel, _ = simulate_demand_panel(6, 60, seed=8, promo_effect=0.5)
    panel["period"] = np.tile(np.arange(60), 6)
    fit = fit_elasticity(panel, covariates=["promo"], pooling=False, per_row_covariates=False)
    codes = pd.factorize(panel["sku"], sort=True)[0]
    logp = np.log(panel["price"].to_numpy())
    x = logp - pd.Series(logp).groupby(codes).transform("mean").to_numpy()
    dummies = np.eye(6)[codes]
    design = np.column_stack([dummies, dummies * x[:, None], panel["promo"]])
    ref = sm.GLM(panel["quantity"].to_numpy(), design, family=sm.families.Poisson()).fit(tol=1e-12)
    np.testing.assert_allclose(fit.params.elasticity, ref.params[6:12], atol=1e-4)
    np.testing.assert_allclose(fit.covariate_effects["promo"][0], ref.params[12], atol=1e-4)


def test_jit_and_eager_agree(x64: None) -> None:
    panel, _ = simulate_demand_panel(
        3, 24, seed=2, intensity=True, profile_amplitude=0.3, promo_effect=0.2, stock=3
    )
    kwargs = {
        "intensity": "intensity",
        "covariates": ["promo"],
        "sold_out": "sold_out",
        "pooling": False,
    }
    jitted = fit_elasticity(panel, **kwargs)
    eager = fit_elasticity(panel, jit=False, **kwargs)
    assert jitted.iterations == eager.iterations
    np.testing.assert_allclose(jitted.params.elasticity, eager.params.elasticity, atol=1e-10)
    np.testing.assert_allclose(jitted.elasticity_se, eager.elasticity_se, rtol=1e-8)


def test_censored_derivatives_match_autodiff(x64: None) -> None:
    """The closed-form censored score and curvature equal jax.grad of -log P(y, lam)."""
    y = jnp.array([[1.0, 3.0, 7.0, 2.0, 20.0]])
    eta = jnp.log(jnp.array([[0.5, 3.0, 4.0, 9.0, 2.0]]))
    data = _Data(
        X=jnp.zeros((1, 1, 5)),
        y=y,
        mask=jnp.ones_like(y),
        hour=jnp.zeros((1, 5), jnp.int32),
        cov=jnp.zeros((0, 1, 5)),
        cens_idx=jnp.arange(5, dtype=jnp.int32),
        cens_y=y[0],
        prior_mean=jnp.zeros((1, 2)),
        prior_prec=jnp.zeros((1, 2)),
        eb_group=jnp.zeros(1, jnp.int32),
        theta0=jnp.zeros((1, 2)),
        shared0=jnp.zeros(24),
    )
    st_ = _Static(
        n_params=2,
        n_cov=0,
        profile=False,
        censored=True,
        count_kmax=0,
        empirical_bayes=False,
        n_groups=1,
        max_iter=1,
        tol=1e-12,
    )

    def total(e: jax.Array) -> jax.Array:
        return jnp.sum(_cell_terms(e.reshape(1, 5), data, st_)[0])

    _, g1, g2 = jax.jit(lambda e: _cell_terms(e, data, st_))(eta)
    np.testing.assert_allclose(g1[0], jax.jit(jax.grad(total))(eta[0]), rtol=1e-7)
    hessian = jax.jit(jax.hessian(total))(eta[0])
    np.testing.assert_allclose(g2[0], jnp.diagonal(hessian), rtol=1e-6)
    # Reference values from the Poisson tail directly: P(D >= y) = 1 - CDF(y - 1).
    from scipy.stats import poisson

    want = -np.log(poisson.sf(np.array(y[0]) - 1, np.exp(np.array(eta[0]))))
    np.testing.assert_allclose(_cell_terms(eta, data, st_)[0][0], want, rtol=1e-9)
    # The finite-sum path for integer counts gives the same terms.
    fast = jax.jit(lambda e: _cell_terms(e, data, st_._replace(count_kmax=24)))(eta)
    for a, b in zip(fast, _cell_terms(eta, data, st_), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("kmax", [8, 64])
def test_finite_sum_survival_equals_gammainc(x64: None, kmax: int) -> None:
    y, lam = np.meshgrid(np.arange(1, kmax + 1.0), np.geomspace(1e-3, 400.0, 300))
    y, lam = jnp.asarray(y.ravel()), jnp.asarray(lam.ravel())
    fast = jax.jit(_log_survival_counts, static_argnums=2)(y, lam, kmax)
    ref = _log_survival(y, lam)
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- censoring


def test_ignoring_sell_outs_biases_elasticity_and_censoring_removes_it(x64: None) -> None:
    panel, truth = simulate_demand_panel(
        60, 96, seed=4, base_rate=(4.0, 6.0), price_spread=0.35, stock=4.0, tau=0.2
    )
    share = panel["sold_out"].mean()
    assert 0.2 < share < 0.6
    naive = fit_elasticity(panel)
    censored = fit_elasticity(panel, sold_out="sold_out")
    bias_naive = float(np.median(naive.params.elasticity - truth.elasticity))
    bias_censored = float(np.median(censored.params.elasticity - truth.elasticity))
    # Sell-outs cap sales at cheap prices: the naive fit sees flatter demand (beta toward 0).
    assert bias_naive > 0.3
    assert abs(bias_censored) < 0.1
    assert censored.table["n_censored"].sum() > 0


# ---------------------------------------------------------------- pooling


def test_pooling_beats_unpooled_glm_on_short_series(x64: None) -> None:
    """72 hourly periods per SKU: the empirical-Bayes fit halves the per-SKU GLM's error."""
    cats = {"comics": -1.6, "apparel": -2.2, "snacks": -1.0}
    panel, truth = simulate_demand_panel(240, 72, seed=21, categories=cats, tau=0.25)
    unpooled = fit_elasticity(panel, pooling=False)
    pooled = fit_elasticity(panel, categories="category")
    ratio = _median_abs_error(pooled, truth.elasticity) / _median_abs_error(
        unpooled, truth.elasticity
    )
    # Measured 0.45 on this seed; assert clearly below 1.
    assert ratio < 0.7
    # Empirical Bayes found each category's mean.
    for cat, mean in cats.items():
        est = pooled.table.loc[pooled.table["category"] == cat, "prior_mean"].iloc[0]
        assert abs(est - mean) < 0.15


def test_cold_start_sku_shrinks_to_its_category(x64: None) -> None:
    cats = {"comics": -1.6, "snacks": -2.6}
    panel, truth = simulate_demand_panel(80, 72, seed=9, categories=cats, tau=0.2)
    new = panel[panel["sku"] == "sku-00000"].head(3).assign(sku="new-sku")
    cat = new["category"].iloc[0]
    panel = pd.concat([panel, new], ignore_index=True)
    fit = fit_elasticity(panel, categories="category")
    row = fit.table.set_index("sku").loc["new-sku"]
    assert row["n_obs"] == 3
    assert abs(row["elasticity"] - cats[cat]) < 0.2
    assert row["elasticity_se"] < 0.5
    unpooled = fit_elasticity(panel, pooling=False).table.set_index("sku").loc["new-sku"]
    assert unpooled["elasticity_se"] > 2 * row["elasticity_se"]


def test_configured_priors_by_sku_and_category(x64: None) -> None:
    panel, _ = simulate_demand_panel(30, 24, seed=6, categories={"comics": -1.5})
    priors = {"comics": (-1.6, 0.01), "sku-00003": (-4.0, 0.01)}
    fit = fit_elasticity(panel, priors=priors, categories="category")
    table = fit.table.set_index("sku")
    assert table.loc["sku-00003", "elasticity"] == pytest.approx(-4.0, abs=0.05)
    assert table.loc["sku-00001", "elasticity"] == pytest.approx(-1.6, abs=0.05)
    assert table.loc["sku-00001", "prior_sd"] == pytest.approx(0.01)

    class CategoryPriorLike:
        mean, sd = -2.0, 0.01

    fit2 = fit_elasticity(panel, priors={"comics": CategoryPriorLike()}, categories="category")
    assert np.allclose(fit2.params.elasticity, -2.0, atol=0.05)


# ---------------------------------------------------------------- warm start, periods


def test_warm_start_converges_in_fewer_iterations(x64: None) -> None:
    panel, _ = simulate_demand_panel(
        50, 96, seed=12, intensity=True, profile_amplitude=0.4, promo_effect=0.3
    )
    kwargs = {"intensity": "intensity", "covariates": ["promo"]}
    first = fit_elasticity(panel.iloc[: len(panel) // 2], **kwargs)  # not a balanced grid
    cold = fit_elasticity(panel, **kwargs)
    warm = fit_elasticity(panel, init=cold, **kwargs)
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.params.elasticity, cold.params.elasticity, atol=1e-6)
    warm_from_older = fit_elasticity(panel, init=first, **kwargs)
    assert warm_from_older.converged


def test_weekly_retail_panel_without_daily_profile(x64: None) -> None:
    panel, truth = simulate_demand_panel(
        20, 104, seed=13, freq="7D", base_rate=(50.0, 200.0), promo_effect=0.6
    )
    fit = fit_elasticity(panel, covariates=["promo"])
    assert fit.daily_profile is None and fit.period_hours == 168.0
    assert _median_abs_error(fit, truth.elasticity) < 0.1
    assert fit.covariate_effects["promo"][0] == pytest.approx(0.6, abs=0.03)


def test_markets_are_separate_rows(x64: None) -> None:
    panel, _ = simulate_demand_panel(5, 48, seed=14)
    both = pd.concat([panel.assign(market="nyc"), panel.assign(market="la")], ignore_index=True)
    fit = fit_elasticity(both, market="market")
    assert len(fit.keys) == 10 and ("sku-00000", "la") in fit.keys
    assert list(fit.table.columns[:2]) == ["sku", "market"]
    la = fit.expected_demand("sku-00000", 10.0, market="la")
    assert la == pytest.approx(fit.expected_demand("sku-00000", 10.0, market="nyc"), rel=1e-4)


# ---------------------------------------------------------------- result object


def test_predictions_save_load_and_reporting(tmp_path, x64: None) -> None:  # type: ignore[no-untyped-def]
    panel, _ = simulate_demand_panel(8, 72, seed=15, intensity=True, profile_amplitude=0.5)
    fit = fit_elasticity(panel, intensity="intensity")
    p = fit.params
    i = 3
    sku = fit.keys[i][0]
    pref = np.exp(fit.log_pref[i])
    # At the reference price and hour h: exp(alpha + s(h) + gamma I).
    got = fit.expected_demand(sku, pref, intensity=2.0, period=14)
    want = np.exp(p.alpha[i] + fit.daily_profile[14] + 2.0 * p.intensity_lift[i])
    assert got == pytest.approx(want, rel=1e-10)
    # Elasticity at intensity I is beta + delta I: a 1 % price rise changes demand by it.
    ratio = fit.expected_demand(sku, pref * 1.01, 2.0, period=14) / got
    assert np.log(ratio) / np.log(1.01) == pytest.approx(p.elasticity[i] + 2 * p.intensity_shift[i])

    prices = np.exp(fit.log_pref)[:, None] * np.array([[0.8, 1.0, 1.2]])
    inten = np.full((8, 5), 2.0)
    rates = fit.demand_rates(prices, inten, hours=np.array([10, 11, 12, 13, 14]))
    assert rates.shape == (8, 5, 3)
    assert rates[i, 4, 1] == pytest.approx(got, rel=1e-10)
    # Demand falls with price where the intensity data are (I = 2 is beyond the panel's
    # 95th percentile, where one row's fitted shift, +1.1 +- 0.6, flattens its curve).
    typical = fit.demand_rates(prices, np.full((8, 5), 0.25), hours=np.arange(10, 15))
    assert np.all(np.diff(typical, axis=2) < 0)

    fit.save(tmp_path / "fit")
    back = ElasticityFit.load(tmp_path / "fit")
    pd.testing.assert_frame_equal(back.table, fit.table)
    assert back.expected_demand(sku, 12.0, 1.0, period=3) == fit.expected_demand(
        sku, 12.0, 1.0, period=3
    )
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "fit").iterdir())
    blob = fit.to_bytes()
    for stored in (blob, b"DIR" + blob):  # as bytes, and as earlier re-fits stored them
        again = ElasticityFit.from_bytes(stored)
        pd.testing.assert_frame_equal(again.table, fit.table)
        np.testing.assert_array_equal(again.log_price_range, fit.log_price_range)
    with pytest.raises(InputError, match="not a saved fit"):
        ElasticityFit.from_bytes(b"garbage")

    summary = fit.to_dict()
    json.dumps(summary)
    assert summary["n_rows"] == 8 and summary["converged"] is True
    assert len(summary["table"]) == 8 and "elasticity_se" in summary["table"][0]
    text = str(fit)
    assert "8 rows" in text and "converged" in text and "daily profile" in text


def test_laplace_draws_have_the_fitted_mean_and_covariance(x64: None) -> None:
    panel, _ = simulate_demand_panel(4, 72, seed=16, intensity=True)
    fit = fit_elasticity(panel, intensity="intensity")
    draws = fit.sample_params(20000, key=jax.random.PRNGKey(0))
    assert draws.elasticity.shape == (20000, 4)
    np.testing.assert_allclose(draws.elasticity.mean(0), fit.params.elasticity, atol=0.03)
    np.testing.assert_allclose(draws.elasticity.std(0), fit.elasticity_se, rtol=0.03)
    rates = fit.demand_rates(np.exp(fit.log_pref)[:, None] * np.ones((4, 2)), params=draws)
    assert rates.shape == (20000, 4, 1, 2)
    other = fit.sample_params(3, key=jax.random.PRNGKey(1))
    assert not np.allclose(other.elasticity, draws.elasticity[:3])


# ---------------------------------------------------------------- bad input


def _small_panel() -> pd.DataFrame:
    panel, _ = simulate_demand_panel(3, 6, seed=0, stock=2.0)
    return panel


@pytest.mark.parametrize(
    ("mutate", "kwargs", "pattern"),
    [
        (lambda d: d.drop(columns=["price"]), {}, r"missing column\(s\) \['price'\]"),
        (lambda d: d, {"intensity": "heat"}, r"missing column\(s\) \['heat'\]"),
        (
            lambda d: d.assign(price=d["price"].where(d.index != 4, 0.0)),
            {},
            r"'price' must be > 0.*rows \[4\]",
        ),
        (
            lambda d: d.assign(quantity=d["quantity"].where(d.index != 7, -1.0)),
            {},
            r"'quantity' must be >= 0.*rows \[7\]",
        ),
        (
            lambda d: d.assign(quantity=d["quantity"].where(d.index != 2, np.nan)),
            {},
            r"'quantity'.*NaN.*rows \[2\]",
        ),
        (
            lambda d: d.assign(price=d["price"].where(d.index != 5, np.inf)),
            {},
            r"'price'.*inf.*rows \[5\]",
        ),
        (
            lambda d: pd.concat([d, d.iloc[[1]]]),
            {},
            r"more than one row per \(sku, period\) in rows \[1, 1\]",
        ),
        (
            lambda d: d.assign(sold_out=np.where(d.index == 3, 2, 0)),
            {"sold_out": "sold_out"},
            r"'sold_out' must be boolean.*rows \[3\]",
        ),
        (
            lambda d: d.assign(sku=d["sku"].where(d.index != 0, None)),
            {},
            r"'sku' has missing values in rows \[0\]",
        ),
    ],
)
def test_bad_panels_raise_naming_column_and_rows(mutate, kwargs, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=pattern):
        fit_elasticity(mutate(_small_panel()), **kwargs)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 17), st.sampled_from(["price", "quantity"]), st.floats(-1e3, 0.0))
def test_any_bad_value_is_reported_with_its_row(row: int, column: str, value: float) -> None:
    panel = _small_panel()
    if column == "quantity" and value == 0.0:
        value = -0.5
    panel.loc[row, column] = value
    with pytest.raises(InputError, match=rf"'{column}'.*rows \[{row}\]"):
        fit_elasticity(panel)


def test_argument_errors_say_what_is_allowed() -> None:
    panel = _small_panel()
    with pytest.raises(InputError, match="pooling=False fits without priors"):
        fit_elasticity(panel, pooling=False, priors={"x": (-1.0, 1.0)})
    with pytest.raises(InputError, match=r"priors\['x'\] must have a finite mean and sd > 0"):
        fit_elasticity(panel, priors={"x": (-1.0, 0.0)})
    with pytest.raises(InputError, match="max_iter must be an integer"):
        fit_elasticity(panel, max_iter=0)
    fit = fit_elasticity(panel)
    with pytest.raises(InputError, match="no fitted row for sku='nope'"):
        fit.expected_demand("nope", 1.0)
    with pytest.raises(InputError, match=r"prices must have shape \[S=3, K\]"):
        fit.demand_rates(np.ones((2, 2)))


def test_cache_blocked_row_sums_give_the_same_fit(x64: None) -> None:
    """The CPU path that forms the per-row sums block by block equals the one-shot path."""
    from pricing import model

    panel, _ = simulate_demand_panel(64, 24, seed=17, intensity=True, stock=3.0)
    prep = model._prepare(
        panel,
        sku="sku",
        market=None,
        period="period",
        price="price",
        quantity="quantity",
        intensity="intensity",
        covariates=(),
        sold_out="sold_out",
        priors=None,
        categories=None,
        pooling=True,
        init=None,
        daily_profile=None,
        max_iter=50,
    )
    whole = model._fit_impl(prep.data, prep.static._replace(row_block=0))
    blocked = model._fit_impl(prep.data, prep.static._replace(row_block=16))
    assert int(whole.iterations) == int(blocked.iterations)
    np.testing.assert_allclose(blocked.theta, whole.theta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blocked.cov_theta, whole.cov_theta, rtol=1e-10, atol=1e-14)
