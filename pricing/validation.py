"""Held-out scores of a demand fit: a time split, Poisson deviance, the naive baseline.

A fit that explains its training periods may still predict the next ones worse than
each row's mean rate (a misspecified price response, an elasticity carried beyond the
prices seen). The scores here compare, on the most recent periods of a panel:

- the model refitted on the earlier periods, predicting each held-out cell at its
  observed price, hour, intensity and covariates;
- the naive predictive: each row's mean units per period over the earlier periods.

Both by the mean Poisson deviance per scored cell (McCullagh & Nelder 1989, §2.3),

.. math:: D(y, μ) = 2\\,[\\, y \\log(y / μ) - (y - μ) \\,],\\qquad 0 \\log 0 = 0,

lower is better. Cells that ended sold out are left out (their sales are a lower bound
on demand), and so are rows without an earlier period (the naive mean has nothing to go
on).

References:
    McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed.

Example:
    >>> train, test = holdout_split(panel, fraction=0.15)  # doctest: +SKIP
    >>> score = holdout_score(fit_elasticity(train), train, test)  # doctest: +SKIP
    >>> score.model_deviance, score.naive_deviance  # doctest: +SKIP
    (1.02, 1.31)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model import ElasticityFit, fit_elasticity

__all__ = [
    "HoldoutScore",
    "ModelComparison",
    "compare_models",
    "holdout_score",
    "holdout_split",
    "poisson_deviance",
    "predict_cells",
]


class HoldoutScore(NamedTuple):
    """Mean Poisson deviance per scored held-out cell of the model and of the naive mean.

    Attributes:
        model_deviance: the fit's predictions at the observed prices.
        naive_deviance: each row's mean rate over the training periods.
        n_cells: held-out cells scored (uncensored, row fitted and seen in training).
        n_rows: rows with at least one scored cell.
    """

    model_deviance: float
    naive_deviance: float
    n_cells: int
    n_rows: int

    def worse_than_naive(self, margin: float) -> bool:
        """True when the model's deviance exceeds the naive one by more than ``margin``
        (a fraction: 0.1 is 10 %)."""
        return self.model_deviance > self.naive_deviance * (1.0 + margin)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_deviance": round(self.model_deviance, 6),
            "naive_deviance": round(self.naive_deviance, 6),
            "n_cells": self.n_cells,
            "n_rows": self.n_rows,
        }


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Per-cell Poisson deviance ``2 [y log(y/μ) − (y − μ)]`` (``0 log 0 = 0``)."""
    y = np.asarray(y, dtype=float)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-12)
    ylog = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return np.asarray(2.0 * (ylog - (y - mu)), dtype=float)


def holdout_split(
    panel: pd.DataFrame,
    *,
    period: str = "period",
    fraction: float = 0.15,
    periods: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The panel's last ``fraction`` of distinct periods (at least one) and the rest.

    Args:
        panel: one row per (row key, period).
        period: the period column (datetimes or numbers).
        fraction: share of the distinct periods held out, in (0, 1).
        periods: hold out this many of the latest distinct periods instead (>= 1, fewer
            than the panel has).

    Returns:
        ``(train, test)``: rows before the cut and rows at or after it.

    Raises:
        InputError: a fraction outside (0, 1), ``periods`` out of range, or fewer than two
            distinct periods.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must be in (0, 1), got {fraction}")
    distinct = np.sort(panel[period].unique())
    if len(distinct) < 2:
        raise InputError(f"need at least 2 distinct periods to hold some out, got {len(distinct)}")
    if periods is not None and not 1 <= periods < len(distinct):
        raise InputError(
            f"holdout periods must be in [1, {len(distinct) - 1}] for a panel of "
            f"{len(distinct)} distinct periods, got {periods}"
        )
    if periods is None:
        periods = min(max(1, math.ceil(fraction * len(distinct))), len(distinct) - 1)
    cut = distinct[len(distinct) - periods]
    late = (panel[period] >= cut).to_numpy()
    return panel[~late], panel[late]


def predict_cells(
    fit: ElasticityFit,
    panel: pd.DataFrame,
    *,
    sku: str = "sku",
    market: str | None = None,
    period: str = "period",
    price: str = "price",
    intensity: str | None = None,
    covariates: Sequence[str] = (),
) -> np.ndarray:
    """Expected units of each panel row at its own price, hour, intensity and covariates.

    Prices beyond a row's training range are predicted as the fit predicts them by
    default (:meth:`~pricing.model.ElasticityFit.demand_rates`, ``extrapolation="prior"``).

    Args:
        fit: the fit to predict with.
        panel: rows to predict (the columns named below).
        sku, market, period, price, intensity: column names, as :func:`fit_elasticity`.
        covariates: the fit's covariate columns (each fitted covariate must be named).

    Returns:
        ``[len(panel)]`` rates; ``nan`` for a row whose key the fit does not have.

    Raises:
        InputError: a missing fitted covariate or an unknown one, a non-positive price.
    """
    names = tuple(covariates)
    per_row = fit.row_covariate_effects or {}
    fitted = list({**fit.covariate_effects, **per_row})
    if sorted(names) != sorted(fitted):
        raise InputError(f"covariates must be the fit's {fitted}, got {list(names)}")
    keys = zip(
        panel[sku].to_numpy(),
        panel[market].to_numpy() if market else [None] * len(panel),
        strict=True,
    )
    where = {k: i for i, k in enumerate(fit.keys)}
    row = np.array([where.get(k, -1) for k in keys], dtype=np.int64)
    known = row >= 0
    r = np.where(known, row, 0)
    p = panel[price].to_numpy(dtype=float)
    if np.any(~np.isfinite(p) | (p <= 0)):
        raise InputError(f"column {price!r} must be finite and > 0")
    if fit.daily_profile is not None:
        prof = fit.daily_profile[pd.to_datetime(panel[period]).dt.hour.to_numpy()]
    else:
        prof = np.zeros(len(panel))
    inten = panel[intensity].to_numpy(dtype=float) if intensity else np.zeros(len(panel))
    z = np.zeros(len(panel))
    for name in names:
        effect = per_row[name][r] if name in per_row else fit.covariate_effects[name][0]
        z += effect * panel[name].to_numpy(dtype=float)
    pr = fit.params
    # Beyond a row's seen prices, as the fit's own predictions (extrapolation="prior").
    x_in, x_out = fit._price_split(np.log(p), r, "prior")
    beyond = fit._slope_beyond(pr.elasticity[r], r)
    eta = pr.alpha[r] + prof + pr.intensity_lift[r] * inten + z
    eta = eta + (pr.elasticity[r] + pr.intensity_shift[r] * inten) * x_in
    eta = eta + (beyond + pr.intensity_shift[r] * inten) * x_out
    return np.where(known, np.exp(eta), np.nan)


def holdout_score(
    fit: ElasticityFit,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    sku: str = "sku",
    market: str | None = None,
    period: str = "period",
    price: str = "price",
    quantity: str = "quantity",
    intensity: str | None = None,
    covariates: Sequence[str] = (),
    sold_out: str | None = None,
) -> HoldoutScore:
    """Score ``fit`` (fitted on ``train``) and the naive per-row mean on ``test``.

    Args:
        fit: a fit of ``train``.
        train, test: the two sides of :func:`holdout_split`.
        sku, market, period, price, quantity, intensity, covariates, sold_out: column
            names, as :func:`fit_elasticity`.

    Returns:
        :class:`HoldoutScore` (deviances ``nan`` when no cell could be scored).
    """
    key_cols = [sku] + ([market] if market else [])
    keep = np.ones(len(test), dtype=bool)
    if sold_out is not None:
        keep &= ~test[sold_out].to_numpy().astype(bool)
    naive_rate = train.groupby(key_cols)[quantity].mean()
    index = pd.MultiIndex.from_frame(test[key_cols]) if market else pd.Index(test[sku])
    naive = naive_rate.reindex(index).to_numpy(dtype=float)
    model = predict_cells(
        fit,
        test,
        sku=sku,
        market=market,
        period=period,
        price=price,
        intensity=intensity,
        covariates=covariates,
    )
    keep &= np.isfinite(naive) & np.isfinite(model)
    y = test[quantity].to_numpy(dtype=float)[keep]
    if not keep.any():
        return HoldoutScore(math.nan, math.nan, 0, 0)
    n_rows = int(test[keep][key_cols].drop_duplicates().shape[0])
    return HoldoutScore(
        model_deviance=float(np.mean(poisson_deviance(y, model[keep]))),
        naive_deviance=float(np.mean(poisson_deviance(y, naive[keep]))),
        n_cells=int(keep.sum()),
        n_rows=n_rows,
    )


class ModelComparison(NamedTuple):
    """Held-out scores of the default fit against the per-row GLM and the naive mean.

    Attributes:
        model, glm, naive: mean Poisson deviance per scored held-out cell of the default
            fit (pooled), of the unpooled Poisson GLM with the same terms
            (``pooling=False``), and of each row's training mean.
        model_positive, glm_positive: share of rows whose fitted own-price elasticity
            is positive.
        n_cells, n_rows: held-out cells and rows scored (the same for all three).
        n_train_periods, n_holdout_periods: distinct periods on each side of the split.
    """

    model: float
    glm: float
    naive: float
    model_positive: float
    glm_positive: float
    n_cells: int
    n_rows: int
    n_train_periods: int
    n_holdout_periods: int

    @property
    def beats_baselines(self) -> bool:
        """The default fit scores below both the GLM and the naive mean."""
        return self.model < self.glm and self.model < self.naive

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (round(v, 6) if isinstance(v, float) else v) for k, v in self._asdict().items()
        }
        out["beats_baselines"] = self.beats_baselines
        return out

    def __str__(self) -> str:
        rows = [
            ("default fit", self.model, f"{100 * self.model_positive:.1f} %"),
            ("per-row Poisson GLM", self.glm, f"{100 * self.glm_positive:.1f} %"),
            ("naive per-row mean", self.naive, "-"),
        ]
        head = (
            f"held out: last {self.n_holdout_periods} of {self.n_train_periods + self.n_holdout_periods}"
            f" periods, {self.n_cells} cells in {self.n_rows} rows (mean Poisson deviance,"
            " lower is better)"
        )
        lines = [head, f"  {'model':<22}{'deviance':>12}{'positive elasticities':>24}"]
        lines += [f"  {name:<22}{dev:>12.4f}{pos:>24}" for name, dev, pos in rows]
        verdict = "beats" if self.beats_baselines else "does NOT beat"
        lines.append(f"  the default fit {verdict} both baselines")
        return "\n".join(lines)


def compare_models(
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
    categories: str | None = None,
    holdout_periods: int | None = None,
    fraction: float = 0.15,
    per_row_covariates: bool = True,
) -> ModelComparison:
    """Hold out the latest periods, fit on the rest, score three predictives on them.

    The default fit (:func:`~pricing.model.fit_elasticity` at its defaults), the unpooled
    Poisson GLM with the same terms, and each row's training mean, all by
    :func:`holdout_score` on the same cells. This is what ``dropprice model validate``
    prints.

    Args:
        panel: one row per (sku[, market], period), as :func:`fit_elasticity` takes it.
        sku, market, period, price, quantity, intensity, covariates, sold_out: columns.
        categories: column of each SKU's category (empirical-Bayes groups), or ``None``.
        holdout_periods: the number of latest distinct periods held out; ``None`` holds
            out ``fraction`` of them.
        fraction: see ``holdout_periods``.
        per_row_covariates: covariate effects per row (pooled by category in the default
            fit, one per row in the GLM), as :func:`fit_elasticity`'s default; ``False``
            shares them across rows in both.

    Returns:
        :class:`ModelComparison`.

    Raises:
        InputError: bad columns or values (as :func:`fit_elasticity`), or a split that
            leaves no held-out cell to score.

    Example:
        >>> print(compare_models(panel, sku="brand", market="store", period="week"))  # doctest: +SKIP
    """
    train, test = holdout_split(panel, period=period, fraction=fraction, periods=holdout_periods)
    columns: dict[str, Any] = dict(
        sku=sku,
        market=market,
        period=period,
        price=price,
        quantity=quantity,
        intensity=intensity,
        covariates=tuple(covariates),
        sold_out=sold_out,
    )
    terms = dict(columns, per_row_covariates=per_row_covariates)
    model = fit_elasticity(train, categories=categories, **terms)
    glm = fit_elasticity(train, pooling=False, **terms)
    score = holdout_score(model, train, test, **columns)
    glm_score = holdout_score(glm, train, test, **columns)
    if score.n_cells == 0:
        raise InputError(
            "no held-out cell could be scored: every held-out row is sold out or new; "
            "hold out more periods"
        )
    return ModelComparison(
        model=score.model_deviance,
        glm=glm_score.model_deviance,
        naive=score.naive_deviance,
        model_positive=float(np.mean(model.positive_elasticity)),
        glm_positive=float(np.mean(glm.positive_elasticity)),
        n_cells=score.n_cells,
        n_rows=score.n_rows,
        n_train_periods=int(train[period].nunique()),
        n_holdout_periods=int(test[period].nunique()),
    )
