"""The fit from arrays: :func:`fit_elasticity_arrays` for callers that keep ``[S, T]`` grids.

A service that re-fits every hour holds its panel as grids (one row per SKU(-market), one
column per period) and appends a column at a time; building a long pandas frame with a
string key per cell only for :func:`~pricing.model.fit_elasticity` to factorize it again
costs more than the solve on small re-fits. This entry point takes the grids as they are:
the keys become categorical codes in the caller's row order (no string hashing or sort),
the cells are laid out row by row (the preparation's sorted, balanced fast path: a reshape,
no scatter), and the fit is the same as from the equivalent DataFrame (a test checks it).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model.fit import fit_elasticity
from pricing.model.result import ElasticityFit

__all__ = ["fit_elasticity_arrays"]


def fit_elasticity_arrays(
    quantity: np.ndarray,
    price: np.ndarray,
    *,
    skus: Sequence[Hashable],
    markets: Sequence[Hashable] | None = None,
    periods: np.ndarray | pd.DatetimeIndex | None = None,
    observed: np.ndarray | None = None,
    intensity: np.ndarray | None = None,
    covariates: Mapping[str, np.ndarray] | None = None,
    sold_out: np.ndarray | None = None,
    categories: Sequence[Hashable] | None = None,
    **options: Any,
) -> ElasticityFit:
    """Fit the demand model on ``[S, T]`` grids (the same model as :func:`fit_elasticity`).

    Args:
        quantity: ``[S, T]`` units sold per row and period (>= 0).
        price: ``[S, T]`` price charged (> 0 where observed).
        skus: ``[S]`` SKU of each row; with ``markets``, each (sku, market) pair once.
        markets: ``[S]`` market of each row, or ``None`` (keys ``(sku, None)``).
        periods: ``[T]`` period labels shared by every row, strictly increasing: datetimes
            (hourly drops: the daily profile is fitted by default) or numbers; ``None`` is
            ``0..T-1``.
        observed: ``[S, T]`` bool, ``False`` for cells with no observation (left out);
            ``None``: every cell.
        intensity: ``[S, T]`` micro-event index (adds the lift and shift terms).
        covariates: ``{name: [S, T]}`` shared effects (promotion, display, ...).
        sold_out: ``[S, T]`` bool, the period ended sold out (censored).
        categories: ``[S]`` category of each row (priors and empirical-Bayes groups).
        **options: the other keywords of :func:`fit_elasticity` (``priors``, ``init``,
            ``pooling``, ``daily_profile``, ``max_iter``, ``jit``, ``level_priors``).

    Returns:
        :class:`~pricing.model.ElasticityFit`, rows in the order of ``skus`` (and
        ``markets``) when those name each SKU's rows together.

    Raises:
        InputError: grids whose shapes disagree, duplicate keys, periods that are not
            strictly increasing, or anything :func:`fit_elasticity` refuses.

    Example:
        >>> fit = fit_elasticity_arrays(units, prices, skus=names, intensity=index)  # doctest: +SKIP
    """
    qty = np.asarray(quantity)
    if qty.ndim != 2 or qty.size == 0:
        raise InputError(f"quantity must be a non-empty [S, T] grid, got shape {qty.shape}")
    s, t = qty.shape
    grids: dict[str, np.ndarray] = {"price": _grid(price, "price", s, t)}
    if intensity is not None:
        grids["intensity"] = _grid(intensity, "intensity", s, t)
    for name, values in (covariates or {}).items():
        if name in ("sku", "market", "period", "price", "quantity", "intensity", "sold_out"):
            raise InputError(f"covariate name {name!r} is taken by a panel column; rename it")
        grids[name] = _grid(values, f"covariates[{name!r}]", s, t)
    if sold_out is not None:
        grids["sold_out"] = _grid(sold_out, "sold_out", s, t).astype(bool)
    keep = np.ones((s, t), bool) if observed is None else _grid(observed, "observed", s, t)
    keep = keep.astype(bool).reshape(-1)

    sku_col, market_col = _key_columns(skus, markets, s, t)
    period_values = np.arange(t) if periods is None else periods
    if len(period_values) != t:
        raise InputError(f"periods must have T={t} entries, got {len(period_values)}")
    period_index = pd.Index(period_values)
    if not period_index.is_monotonic_increasing or not period_index.is_unique:
        raise InputError("periods must be strictly increasing (one column per period)")
    columns: dict[str, Any] = {
        "sku": sku_col,
        "period": np.tile(np.asarray(period_index), s),
        "quantity": qty.reshape(-1),
    }
    if market_col is not None:
        columns["market"] = market_col
    columns.update({name: grid.reshape(-1) for name, grid in grids.items()})
    if categories is not None:
        if len(categories) != s:
            raise InputError(f"categories must have S={s} entries, got {len(categories)}")
        cat_codes, cat_names = pd.factorize(pd.Index(list(categories), tupleize_cols=False))
        columns["category"] = pd.Categorical.from_codes(np.repeat(cat_codes, t), cat_names)
    panel = pd.DataFrame(columns)
    if not keep.all():
        panel = panel[keep]
    return fit_elasticity(
        panel,
        sku="sku",
        market="market" if market_col is not None else None,
        intensity="intensity" if intensity is not None else None,
        covariates=list(covariates or {}),
        sold_out="sold_out" if sold_out is not None else None,
        categories="category" if categories is not None else None,
        **options,
    )


def _grid(values: Any, name: str, s: int, t: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (s, t):
        raise InputError(f"{name} must have shape [S, T]=({s}, {t}), got {arr.shape}")
    return arr


def _key_columns(
    skus: Sequence[Hashable], markets: Sequence[Hashable] | None, s: int, t: int
) -> tuple[pd.Categorical, pd.Categorical | None]:
    """Categorical key columns in the caller's row order (codes, no string hashing per cell)."""
    if len(skus) != s:
        raise InputError(f"skus must have S={s} entries, got {len(skus)}")
    if markets is not None and len(markets) != s:
        raise InputError(f"markets must have S={s} entries, got {len(markets)}")
    sku_codes, sku_names = pd.factorize(pd.Index(list(skus), tupleize_cols=False))
    if markets is None:
        if len(sku_names) != s:
            raise InputError("skus must be unique (one row per SKU); pass markets for SKU-markets")
        return pd.Categorical.from_codes(np.repeat(sku_codes, t), categories=sku_names), None
    mkt_codes, mkt_names = pd.factorize(pd.Index(list(markets), tupleize_cols=False))
    pairs = sku_codes.astype(np.int64) * len(mkt_names) + mkt_codes
    if len(np.unique(pairs)) != s:
        raise InputError("each (sku, market) pair must name one row only")
    return (
        pd.Categorical.from_codes(np.repeat(sku_codes, t), categories=sku_names),
        pd.Categorical.from_codes(np.repeat(mkt_codes, t), categories=mkt_names),
    )
