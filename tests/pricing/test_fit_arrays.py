"""The fit from [S, T] grids gives the fit from the equivalent DataFrame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricing._panel_sim import simulate_demand_panel
from pricing.exceptions import InputError
from pricing.model import fit_elasticity
from pricing.model.arrays import fit_elasticity_arrays


def _grids(panel: pd.DataFrame, column: str, n_skus: int) -> np.ndarray:
    return panel[column].to_numpy().reshape(n_skus, -1)


def test_grids_fit_like_the_dataframe_with_every_term() -> None:
    n = 12
    panel, _ = simulate_demand_panel(
        n,
        48,
        seed=3,
        categories={"comics": -1.6, "apparel": -2.2},
        intensity=True,
        profile_amplitude=0.4,
        promo_effect=0.3,
        stock=3.0,
    )
    panel = panel.sort_values(["sku", "period"], ignore_index=True)
    from_frame = fit_elasticity(
        panel,
        intensity="intensity",
        covariates=["promo"],
        sold_out="sold_out",
        categories="category",
    )
    skus = panel["sku"].to_numpy()[::48]
    from_grids = fit_elasticity_arrays(
        _grids(panel, "quantity", n),
        _grids(panel, "price", n),
        skus=list(skus),
        periods=pd.DatetimeIndex(panel["period"].iloc[:48]),
        intensity=_grids(panel, "intensity", n),
        covariates={"promo": _grids(panel, "promo", n)},
        sold_out=_grids(panel, "sold_out", n),
        categories=list(panel["category"].to_numpy()[::48]),
    )
    assert from_grids.keys == from_frame.keys
    assert from_grids.n_censored.sum() == from_frame.n_censored.sum() > 0
    for a, b in zip(from_grids.params, from_frame.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(from_grids.daily_profile, from_frame.daily_profile, atol=1e-6)
    assert from_grids.covariate_effects["promo"][0] == pytest.approx(
        from_frame.covariate_effects["promo"][0], abs=1e-6
    )
    np.testing.assert_allclose(from_grids.param_cov, from_frame.param_cov, rtol=1e-5, atol=1e-8)


def test_markets_and_missing_cells_follow_the_callers_rows() -> None:
    panel, _ = simulate_demand_panel(4, 30, seed=8)
    panel["period"] = np.tile(np.arange(30), 4)
    both = pd.concat([panel.assign(market="nyc"), panel.assign(market="la")], ignore_index=True)
    both = both.sort_values(["sku", "market", "period"], ignore_index=True)
    rng = np.random.default_rng(0)
    seen = rng.random(len(both)) > 0.2  # a fifth of the cells were never observed
    from_frame = fit_elasticity(both[seen], market="market", pooling=False)
    keys = both[["sku", "market"]].to_numpy()[::30]
    from_grids = fit_elasticity_arrays(
        _grids(both, "quantity", 8),
        _grids(both, "price", 8),
        skus=list(keys[:, 0]),
        markets=list(keys[:, 1]),
        observed=seen.reshape(8, 30),
        pooling=False,
    )
    # The grids keep the caller's row order ("la" before "nyc" here, as in the frame's sort).
    assert from_grids.keys == [tuple(k) for k in keys.tolist()] == from_frame.keys
    np.testing.assert_array_equal(from_grids.n_obs, seen.reshape(8, 30).sum(axis=1))
    for a, b in zip(from_grids.params, from_frame.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"price": np.ones((2, 4))}, r"price must have shape \[S, T\]=\(3, 4\)"),
        ({"skus": ["a", "a", "b"]}, "skus must be unique"),
        ({"periods": np.array([0, 2, 1, 3])}, "periods must be strictly increasing"),
        ({"intensity": np.ones(4)}, r"intensity must have shape \[S, T\]"),
    ],
)
def test_grids_that_do_not_fit_are_refused(kwargs: dict, match: str) -> None:
    args = {"price": np.ones((3, 4)), "skus": ["a", "b", "c"]} | kwargs
    with pytest.raises(InputError, match=match):
        fit_elasticity_arrays(np.ones((3, 4)), **args)


def test_rows_come_back_in_the_callers_order_with_datetime64_periods() -> None:
    panel, _ = simulate_demand_panel(5, 48, seed=4, profile_amplitude=0.4)
    panel = panel.sort_values(["sku", "period"], ignore_index=True)
    from_frame = fit_elasticity(panel, pooling=False)
    skus = panel["sku"].to_numpy()[::48]
    flip = np.arange(5)[::-1]  # the caller keeps its rows newest SKU first
    periods = panel["period"].iloc[:48].dt.tz_localize(None).to_numpy()
    from_grids = fit_elasticity_arrays(
        _grids(panel, "quantity", 5)[flip],
        _grids(panel, "price", 5)[flip],
        skus=list(skus[flip]),
        periods=periods,
        pooling=False,
    )
    assert from_grids.keys == [(s, None) for s in skus[flip]]
    assert from_grids.daily_profile is not None
    np.testing.assert_allclose(from_grids.daily_profile, from_frame.daily_profile, atol=1e-5)
    np.testing.assert_allclose(
        from_grids.params.elasticity, from_frame.params.elasticity[flip], rtol=1e-5, atol=1e-5
    )


def test_missing_cells_with_the_daily_profile_and_junk_where_unobserved() -> None:
    panel, _ = simulate_demand_panel(6, 48, seed=5, profile_amplitude=0.4)
    panel = panel.sort_values(["sku", "period"], ignore_index=True)
    seen = np.random.default_rng(1).random(len(panel)) > 0.25
    from_frame = fit_elasticity(panel[seen], pooling=False)
    price = _grids(panel, "price", 6).copy()
    price[~seen.reshape(6, 48)] = np.nan  # never read: the cell was not observed
    from_grids = fit_elasticity_arrays(
        _grids(panel, "quantity", 6),
        price,
        skus=list(panel["sku"].to_numpy()[::48]),
        periods=pd.DatetimeIndex(panel["period"].iloc[:48]),
        observed=seen.reshape(6, 48),
        pooling=False,
    )
    np.testing.assert_array_equal(from_grids.n_obs, from_frame.n_obs)
    np.testing.assert_allclose(from_grids.daily_profile, from_frame.daily_profile, atol=1e-6)
    for a, b in zip(from_grids.params, from_frame.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"price": np.array([[1.0, np.nan], [1.0, 1.0]])}, "price must be finite"),
        ({"price": np.array([[1.0, -1.0], [1.0, 1.0]])}, r"price must be > 0 .*\[-1.0\]"),
        ({"observed": np.array([[True, True], [False, False]])}, r"none in rows \['b'\]"),
        ({"sold_out": np.full((2, 2), 2)}, "sold_out must be boolean"),
        ({"pooling": False, "priors": {"a": (-1.0, 1.0)}}, "pooling=False fits without priors"),
    ],
)
def test_bad_cells_are_refused_naming_the_grid(kwargs: dict, match: str) -> None:
    args = {"price": np.ones((2, 2)), "skus": ["a", "b"]} | kwargs
    with pytest.raises(InputError, match=match):
        fit_elasticity_arrays(np.ones((2, 2)), **args)
