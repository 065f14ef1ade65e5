"""The fit's entry point: :func:`fit_elasticity` (prepare, solve, assemble the result)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model.likelihood import N_HOURS as _N_HOURS
from pricing.model.likelihood import DemandParams
from pricing.model.preparation import _prepare, _Prepared
from pricing.model.result import ElasticityFit
from pricing.model.solver import _fit_impl, _FitOut

__all__ = ["fit_elasticity"]


def fit_elasticity(
    panel: pd.DataFrame,
    *,
    sku: str = "sku",
    market: str | None = None,
    period: str = "period",
    price: str = "price",
    quantity: str = "quantity",
    intensity: str | None = None,
    covariates: Sequence[str] = (),
    sold_out: str | None = None,
    priors: Mapping[Any, Any] | None = None,
    init: ElasticityFit | None = None,
    categories: str | Mapping[Any, Any] | None = None,
    pooling: bool = True,
    daily_profile: bool | None = None,
    max_iter: int = 50,
    jit: bool = True,
    level_priors: Mapping[Any, tuple[float, float, float]] | None = None,
    per_row_covariates: bool = True,
) -> ElasticityFit:
    """Fit the Poisson demand model for every SKU(-market) at once (joint MAP).

    See the module docstring for the model, loss, solver and references.

    Args:
        panel: one row per (sku[, market], period) with price > 0 and quantity >= 0.
        sku, market, period, price, quantity: column names (``market=None``: no markets).
            ``period`` may be datetimes (hourly drops, weekly retail) or numbers.
        intensity: column with the micro-event index I (adds γ and δ), or ``None``.
        covariates: columns of shared effects θ (promotion, display, feature flags).
        sold_out: boolean column, True where the period ended sold out (censored).
        priors: elasticity priors ``{sku_or_category: (mean, sd)}`` (or objects with
            ``.mean`` and ``.sd`` such as ``CategoryPrior``). A SKU's own entry wins over
            its category's. SKUs with neither get an empirical-Bayes prior estimated
            from their category (or from all SKUs); ``None`` means empirical Bayes for all.
        init: a previous :class:`ElasticityFit` to warm-start from (matched by key).
        categories: column name in ``panel`` or mapping ``sku -> category`` used for
            prior lookup and empirical-Bayes groups.
        pooling: ``False`` fits every SKU on its own with no prior (unpooled Poisson
            GLM); only allowed with ``priors=None``.
        daily_profile: fit the shared hour-of-day profile; ``None`` = when periods are
            datetimes shorter than a day.
        max_iter: Newton iterations per stage.
        jit: run the compiled program (``False`` runs the same code eagerly).
        level_priors: ``{(sku, market): (log rate, sd, price)}``: a prior on a row's demand
            level, ``log λ ~ N(log rate, sd²)`` per period at ``price`` (before any sale the
            engine's neutral guess; the weak ``N(log ȳ, 5²)`` otherwise).
        per_row_covariates: ``True`` (the default) fits each covariate's effect per row
            (a promotion lifts each SKU by its own amount), pooled within the row's
            category like the elasticities (empirical Bayes with robust moments: with
            little spread between rows it comes back to one shared effect; a weak
            ``N(0, 2²)`` under configured priors; none with ``pooling=False``), and
            reports their precision-weighted average in ``covariate_effects``. ``False``
            fits one effect per covariate shared by every row (the pooled block).

    Returns:
        :class:`ElasticityFit`.

    Raises:
        InputError: a missing column, bad values (naming the column and rows),
            duplicate (key, period) rows, or inconsistent arguments.

    Example:
        >>> fit = fit_elasticity(panel, covariates=["promo"], sold_out="sold_out")  # doctest: +SKIP
        >>> fit.table[["sku", "elasticity", "elasticity_se"]]  # doctest: +SKIP
    """
    _check_options(pooling=pooling, priors=priors, max_iter=max_iter)
    prep = _prepare(
        panel,
        sku=sku,
        market=market,
        period=period,
        price=price,
        quantity=quantity,
        intensity=intensity,
        covariates=covariates,
        sold_out=sold_out,
        priors=priors,
        categories=categories,
        pooling=pooling,
        init=init,
        daily_profile=daily_profile,
        max_iter=max_iter,
        level_priors=level_priors,
        per_row_covariates=per_row_covariates,
    )
    return _solve(prep, tuple(covariates), intensity is not None, jit=jit)


def _solve(
    prep: _Prepared, covariates: tuple[str, ...], has_int: bool, *, jit: bool
) -> ElasticityFit:
    """Run the solver on prepared arrays (compiled, or eagerly) and assemble the fit."""
    if jit:
        out = _fit_impl(prep.data, prep.static)
    else:
        with jax.disable_jit():
            out = _fit_impl(prep.data, prep.static, jit=False)
    return _result(prep, jax.device_get(out), covariates, has_int)


def _check_options(*, pooling: bool, priors: Mapping[Any, Any] | None, max_iter: int) -> None:
    """Refuse options that contradict each other or are out of range (both entry points)."""
    if not pooling and priors is not None:
        raise InputError(
            "pooling=False fits without priors; got priors as well, pass one or the other"
        )
    if not (isinstance(max_iter, int) and 1 <= max_iter <= 10_000):
        raise InputError(f"max_iter must be an integer in [1, 10000], got {max_iter!r}")


def _result(
    prep: _Prepared, out: _FitOut, covariates: tuple[str, ...], has_int: bool
) -> ElasticityFit:
    n = len(prep.keys)  # drop the padding rows
    out = out._replace(
        theta=out.theta[:n],
        cov_theta=out.cov_theta[:n],
        grad_norm=out.grad_norm[:n],
        decrement=out.decrement[:n],
        prior_mean_beta=out.prior_mean_beta[:n],
        prior_sd_beta=out.prior_sd_beta[:n],
        dispersion=out.dispersion[:n],
    )
    theta = np.asarray(out.theta, dtype=float)
    zeros = np.zeros(n)
    st = prep.static
    shared = np.asarray(out.shared, dtype=float)
    shared_cov = np.asarray(out.shared_cov, dtype=float)
    n_row_cov = st.n_row_cov
    cov_effects = {
        name: (
            float(shared[_N_HOURS + c]),
            float(math.sqrt(max(shared_cov[_N_HOURS + c, _N_HOURS + c], 0.0))),
        )
        for c, name in enumerate(covariates[: len(covariates) - n_row_cov])
    }
    first = st.n_params - n_row_cov  # per-row effects: the last columns of theta
    row_effects = {name: theta[:, first + c] for c, name in enumerate(covariates[:n_row_cov])}
    for c, name in enumerate(covariates[:n_row_cov]):  # their precision-weighted average
        var = np.asarray(out.cov_theta, dtype=float)[:, first + c, first + c]
        w = np.where(np.isfinite(var) & (var > 0), 1.0 / np.where(var > 0, var, 1.0), 0.0)
        total = float(np.sum(w))
        mean = float(np.sum(w * np.nan_to_num(row_effects[name])) / total) if total else 0.0
        cov_effects[name] = (mean, math.sqrt(1.0 / total) if total else math.inf)
    param_cov = np.asarray(out.cov_theta, dtype=float)
    finite = np.all(np.isfinite(theta), axis=1) & np.all(np.isfinite(param_cov), axis=(1, 2))
    dec = np.asarray(out.decrement, dtype=float)
    converged = finite & (dec <= st.tol)
    return ElasticityFit(
        keys=prep.keys,
        params=DemandParams(
            alpha=theta[:, 0],
            elasticity=theta[:, 1],
            intensity_lift=theta[:, 2] if has_int else zeros,
            intensity_shift=theta[:, 3] if has_int else zeros,
        ),
        param_cov=param_cov,
        log_pref=prep.log_pref,
        log_price_range=prep.log_price_range,
        daily_profile=shared[:_N_HOURS] if st.profile else None,
        covariate_effects=cov_effects,
        n_obs=prep.n_obs,
        n_censored=prep.n_censored,
        converged_rows=converged,
        grad_norm=np.asarray(out.grad_norm, dtype=float),
        iterations=int(out.iterations),
        prior_mean=np.asarray(out.prior_mean_beta, dtype=float),
        prior_sd=np.asarray(out.prior_sd_beta, dtype=float),
        categories=prep.category_of_row,
        has_intensity=has_int,
        period_hours=prep.period_hours,
        dtype="float64" if jax.config.jax_enable_x64 else "float32",
        loss=float(out.loss),
        shared_converged=bool(float(out.shared_decrement) <= st.tol),
        dispersion=np.asarray(out.dispersion, dtype=float),
        row_covariate_effects=row_effects if n_row_cov else None,
    )
