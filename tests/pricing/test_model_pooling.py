"""Empirical-Bayes pooling: robust to wild rows, honest about overdispersion, sign-aware."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np
import pandas as pd
import pytest

from pricing import fit_elasticity
from pricing._panel_sim import simulate_demand_panel


@pytest.fixture
def x64() -> Iterator[None]:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def _with_wild_rows(seed: int) -> pd.DataFrame:
    """40 SKUs with elasticities N(-1.5, 0.3²) plus two wild ones at -9 and +3."""
    panel, _ = simulate_demand_panel(40, 150, seed=seed, tau=0.3, base_rate=(2.0, 5.0))
    wild = []
    for name, beta in (("wild-steep", -9.0), ("wild-positive", 3.0)):
        part, _ = simulate_demand_panel(
            1, 150, seed=seed + 1, categories={"all": beta}, tau=0.0, base_rate=(4.0, 4.0)
        )
        wild.append(part.assign(sku=name))
    return pd.concat([panel, *wild], ignore_index=True)


def test_a_few_wild_skus_do_not_blow_up_the_category_spread(x64: None) -> None:
    """The spread stays near the 0.3 the 40 ordinary SKUs were drawn with.

    DerSimonian-Laird moments (the earlier estimator) put it at 1.53 on this panel: the
    two wild rows alone make Q large. Rows a little off the mean get a somewhat wider
    prior of their own; the category's spread is the smallest.
    """
    fit = fit_elasticity(_with_wild_rows(seed=3))
    table = fit.table.set_index("sku")
    ordinary = table.drop(index=["wild-steep", "wild-positive"])
    assert ordinary["prior_sd"].min() < 0.6
    assert ordinary["prior_sd"].median() < 0.6
    assert ordinary["prior_mean"].iloc[0] == pytest.approx(-1.5, abs=0.25)
    # The steep row is measured precisely: the t population lets it keep its estimate.
    assert table.loc["wild-steep", "elasticity"] < -7.0
    assert table.loc["wild-steep", "prior_sd"] > ordinary["prior_sd"].max()


def test_a_positive_elasticity_is_flagged_and_pulled_toward_the_prior(x64: None) -> None:
    panel = _with_wild_rows(seed=3)
    pooled = fit_elasticity(panel).table.set_index("sku")
    unpooled = fit_elasticity(panel, pooling=False).table.set_index("sku")
    row = pooled.loc["wild-positive"]
    assert unpooled.loc["wild-positive", "elasticity"] > 2.0
    # It keeps the full category prior (not an outlier's wider one) ...
    assert row["prior_sd"] == pytest.approx(pooled["prior_sd"].min())
    # ... which pulls it toward the category mean, and it is flagged.
    assert row["elasticity"] < unpooled.loc["wild-positive", "elasticity"] - 0.3
    assert bool(row["positive_elasticity"])
    assert pooled["positive_elasticity"].sum() == int(pooled["elasticity"].gt(0).sum())


def test_overdispersion_is_measured_and_the_errors_cover_the_truth(x64: None) -> None:
    """Gamma-Poisson counts (variance 1 + μ/2 times the mean) are not Poisson.

    The fit measures the dispersion (one value per category) and its errors cover the
    true elasticities about as often as they should; the Poisson errors of the unpooled
    GLM cover them far less often. On Poisson counts the dispersion stays about 1.
    """
    panel, truth = simulate_demand_panel(40, 120, seed=8, tau=0.3, base_rate=(8.0, 12.0))
    assert np.all(fit_elasticity(panel).dispersion < 1.2)
    rng = np.random.default_rng(8)
    noisy = panel.assign(quantity=rng.poisson(panel["quantity"] * rng.gamma(2.0, 0.5, len(panel))))
    over = fit_elasticity(noisy)
    phi = float(over.dispersion[0])
    assert phi > 3.0 and np.all(over.dispersion == phi)

    def coverage(table: pd.DataFrame) -> float:
        miss = np.abs(table["elasticity"] - truth.elasticity) / table["elasticity_se"]
        return float(np.mean(miss < 1.96))

    assert coverage(over.table) >= 0.85
    assert coverage(fit_elasticity(noisy, pooling=False).table) < 0.8


def _promo_panel(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """30 SKUs x 80 periods; each SKU's promotion lift drawn from N(0.5, 0.25²)."""
    rng = np.random.default_rng(seed)
    lifts = rng.normal(0.5, 0.25, 30)
    betas = rng.normal(-1.5, 0.3, 30)
    rows = []
    for k in range(30):
        rel = rng.uniform(0.8, 1.2, 80)
        promo = (rng.uniform(size=80) < 0.15).astype(float)
        mean = 4.0 * rel ** betas[k] * np.exp(lifts[k] * promo)
        for t in range(80):
            rows.append((f"sku-{k:02d}", t, 10.0 * rel[t], promo[t], rng.poisson(mean[t])))
    return pd.DataFrame(rows, columns=["sku", "period", "price", "promo", "quantity"]), lifts


def test_per_row_promotion_lifts_are_pooled_within_the_category(
    x64: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """By default each SKU gets its own promotion lift, shrunk toward the category's.

    Pooled, the lifts are closer to the truth than one GLM per SKU (a dozen promoted
    periods each) and than one shared lift; the predictions use each row's own lift.
    """
    panel, lifts = _promo_panel(seed=4)
    fit = fit_elasticity(panel, covariates=["promo"])
    glm = fit_elasticity(panel, covariates=["promo"], pooling=False)
    shared = fit_elasticity(panel, covariates=["promo"], per_row_covariates=False)
    assert fit.row_covariate_effects is not None and shared.row_covariate_effects is None

    def rmse(est: np.ndarray) -> float:
        return float(np.sqrt(np.mean((est - lifts) ** 2)))

    pooled = fit.row_covariate_effects["promo"]
    assert rmse(pooled) < rmse(glm.row_covariate_effects["promo"])  # type: ignore[index]
    assert rmse(pooled) < rmse(np.full(30, shared.covariate_effects["promo"][0]))
    # The summary keeps the typical lift, the table each row's.
    assert fit.covariate_effects["promo"][0] == pytest.approx(0.5, abs=0.1)
    np.testing.assert_array_equal(fit.table["effect_promo"], pooled)
    # Predictions: promotion on vs off moves each row by its own lift.
    prices = np.exp(fit.log_pref)[:, None]
    on = fit.demand_rates(prices, covariates={"promo": np.ones((30, 1))})
    off = fit.demand_rates(prices, covariates={"promo": np.zeros((30, 1))})
    np.testing.assert_allclose(on[:, 0, 0] / off[:, 0, 0], np.exp(pooled), rtol=1e-9)
    one = fit.expected_demand("sku-03", 10.0, covariates={"promo": 1.0})
    assert one == pytest.approx(
        fit.expected_demand("sku-03", 10.0, covariates={"promo": 0.0}) * np.exp(pooled[3])
    )
    # Saved and warm-started with them.
    from pricing import ElasticityFit

    back = ElasticityFit.load(fit.save(tmp_path_factory.mktemp("fit") / "fit"))
    np.testing.assert_array_equal(back.row_covariate_effects["promo"], pooled)  # type: ignore[index]
    again = fit_elasticity(panel, covariates=["promo"], init=fit)
    np.testing.assert_allclose(again.row_covariate_effects["promo"], pooled, atol=1e-5)  # type: ignore[index]
    assert again.iterations <= fit.iterations
