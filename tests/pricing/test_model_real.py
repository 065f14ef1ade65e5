"""The demand model on a real retail panel: store x week x brand orange-juice sales."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np
import pytest

from pricing import fit_elasticity
from pricing.datasets import (
    bayesm_data_dir,
    load_cheese_panel,
    load_dominicks_orange_juice_panel,
    load_orange_juice_panel,
    load_tuna_panel,
)
from pricing.validation import compare_models


@pytest.fixture
def x64() -> Iterator[None]:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def test_orange_juice_panel_is_a_store_week_brand_panel() -> None:
    panel = load_orange_juice_panel()
    assert list(panel.columns) == [
        "store",
        "week",
        "brand",
        "quantity",
        "price",
        "list_price",
        "discount",
        "special",
    ]
    assert not panel.duplicated(["store", "brand", "week"]).any()
    assert set(panel["brand"]) == {"citrus_hill", "minute_maid"}
    assert panel["store"].nunique() == 5 and panel["week"].between(227, 278).all()
    assert panel["quantity"].sum() == 1070  # every recorded purchase lands in one cell
    assert (panel["price"] <= panel["list_price"] + 1e-9).all()
    assert 0 < panel["special"].mean() < 0.5


def test_orange_juice_fits_end_to_end_with_negative_elasticities_and_a_promo_lift(
    x64: None,
) -> None:
    panel = load_orange_juice_panel()
    fit = fit_elasticity(
        panel,
        sku="brand",
        market="store",
        period="week",
        covariates=["special"],
        categories={"citrus_hill": "orange_juice", "minute_maid": "orange_juice"},
    )
    assert fit.converged and fit.daily_profile is None
    table = fit.table
    assert len(table) == 10  # 2 brands x 5 stores
    # The category's elasticity (empirical Bayes) and most store-brand ones are negative
    # and in the range grocery studies report for refrigerated juice (-1 to -4).
    assert -4.0 < table["prior_mean"].iloc[0] < -1.0
    assert (table["elasticity"] < 0).sum() >= 8
    assert -4.0 < table["elasticity"].median() < -1.0
    # Pooling shrinks: no store-brand estimate is as extreme as the unpooled ones.
    unpooled = fit_elasticity(
        panel, sku="brand", market="store", period="week", covariates=["special"], pooling=False
    )
    assert np.ptp(table["elasticity"]) < np.ptp(unpooled.table["elasticity"])
    # An in-store special lifts sales beyond its price cut (z > 3).
    lift, se = fit.covariate_effects["special"]
    assert lift > 0 and lift / se > 3


# ---------------------------------------------------------------- bayesm panels

needs_bayesm = pytest.mark.skipif(
    bayesm_data_dir() is None,
    reason="the R package bayesm's data files are not installed "
    "(apt-get install r-cran-bayesm; .ci/run installs them)",
)

PANELS = {
    "dominicks_orange_juice": (
        load_dominicks_orange_juice_panel,
        {"sku": "brand", "market": "store", "period": "week", "covariates": ["deal", "feature"]},
    ),
    "cheese": (
        load_cheese_panel,
        {"sku": "retailer", "period": "week", "covariates": ["display"]},
    ),
    "tuna": (load_tuna_panel, {"sku": "upc", "period": "week", "covariates": ["on_sale"]}),
}


@needs_bayesm
def test_bayesm_panels_read_without_r() -> None:
    oj = load_dominicks_orange_juice_panel()
    assert oj.shape == (106139, 7) and oj["store"].nunique() == 83
    assert oj["brand"].nunique() == 11 and not oj.duplicated(["store", "brand", "week"]).any()
    assert oj["quantity"].min() >= 1 and 0.005 < oj["price"].min() < oj["price"].max() < 0.1
    cheese = load_cheese_panel()
    assert cheese.shape == (5555, 5) and cheese["retailer"].nunique() == 88
    assert cheese["week"].nunique() == 68 and not cheese.duplicated(["retailer", "week"]).any()
    assert cheese.groupby("retailer")["week"].count().max() == 68
    tuna = load_tuna_panel()
    assert tuna.shape == (7 * 338, 5) and tuna["on_sale"].between(0, 1).all()


@needs_bayesm
@pytest.mark.parametrize("name", sorted(PANELS))
def test_default_fit_beats_the_glm_and_the_naive_mean_on_held_out_weeks(name: str) -> None:
    """The latest 15 % of weeks held out: the default fit (elasticities and covariate
    effects pooled by empirical Bayes) predicts them better than the per-row Poisson GLM
    with the same terms and than each row's mean, with under 5 % positive elasticities."""
    load, columns = PANELS[name]
    result = compare_models(load(), **columns)  # type: ignore[arg-type]
    assert result.model < result.glm and result.model < result.naive, str(result)
    assert result.model_positive < 0.05
