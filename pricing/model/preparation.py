"""The demand model's input: a pandas panel checked and laid out as padded device arrays.

Strict at the edge: a missing column, a bad value (naming the column and rows) or a
duplicate (key, period) row is an :class:`~pricing.exceptions.InputError`. Rows are
padded to a bucket size so re-fits whose SKU count drifts reuse the compiled program.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model.likelihood import N_HOURS as _N_HOURS
from pricing.model.likelihood import _Data, _Static
from pricing.model.priors import _prior_arrays
from pricing.model.result import ElasticityFit
from pricing.model.start import glm_start

_MAX_ROWS_SHOWN = 10
_ROW_BLOCK = 1024  # CPU: rows per cache block of the per-row sums


def _rows(mask: np.ndarray, index: pd.Index) -> str:
    labels = list(index[np.asarray(mask)])
    shown = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in labels[:_MAX_ROWS_SHOWN])
    more = f" (first {_MAX_ROWS_SHOWN} of {len(labels)})" if len(labels) > _MAX_ROWS_SHOWN else ""
    return f"[{shown}]{more}"


def _numeric(
    panel: pd.DataFrame, col: str, *, positive: bool = False, nonneg: bool = False
) -> np.ndarray:
    series = panel[col]
    if series.dtype == bool:
        return series.to_numpy(dtype=float)
    if series.dtype == np.float64:  # already numbers: the column's own memory, no copy
        values = series.to_numpy()
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(
            f"column {col!r} must be finite numbers, got NaN/inf/non-numeric values in rows "
            f"{_rows(bad, panel.index)}"
        )
    if positive and (values <= 0).any():
        bad = values <= 0
        raise InputError(
            f"column {col!r} must be > 0, got {values[bad][:_MAX_ROWS_SHOWN].tolist()} in rows "
            f"{_rows(bad, panel.index)}"
        )
    if nonneg and (values < 0).any():
        bad = values < 0
        raise InputError(
            f"column {col!r} must be >= 0, got {values[bad][:_MAX_ROWS_SHOWN].tolist()} in rows "
            f"{_rows(bad, panel.index)}"
        )
    return values


@dataclass(frozen=True)
class _Prepared:
    keys: list[tuple[Any, Any]]
    sku_of_row: np.ndarray
    market_of_row: np.ndarray | None
    category_of_row: np.ndarray
    log_pref: np.ndarray
    log_price_range: np.ndarray
    n_obs: np.ndarray
    n_censored: np.ndarray
    data: _Data
    static: _Static
    period_hours: float | None


def _prepare(
    panel: pd.DataFrame,
    *,
    sku: str,
    market: str | None,
    period: str,
    price: str,
    quantity: str,
    intensity: str | None,
    covariates: Sequence[str],
    sold_out: str | None,
    priors: Mapping[Any, Any] | None,
    categories: str | Mapping[Any, Any] | None,
    pooling: bool,
    init: ElasticityFit | None,
    daily_profile: bool | None,
    max_iter: int,
    level_priors: Mapping[Any, tuple[float, float, float]] | None = None,
    per_row_covariates: bool = False,
) -> _Prepared:
    if not isinstance(panel, pd.DataFrame):
        raise InputError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    covariates = tuple(covariates)
    wanted = [sku, period, price, quantity, *covariates]
    wanted += [c for c in (market, intensity, sold_out) if c is not None]
    if isinstance(categories, str):
        wanted.append(categories)
    missing = [c for c in wanted if c not in panel.columns]
    if missing:
        raise InputError(f"panel is missing column(s) {missing}; got columns {list(panel.columns)}")
    if len(panel) == 0:
        raise InputError("panel has no rows; need at least one (sku, period) observation")
    idx = panel.index
    for col in [sku, period] + ([market] if market else []):
        bad = panel[col].isna().to_numpy()
        if bad.any():
            raise InputError(f"column {col!r} has missing values in rows {_rows(bad, idx)}")
    price_v = _numeric(panel, price, positive=True)
    qty = _numeric(panel, quantity, nonneg=True)
    inten = _numeric(panel, intensity) if intensity else None
    cov = np.stack([_numeric(panel, c) for c in covariates], axis=1) if covariates else None
    if sold_out is not None:
        so = panel[sold_out]
        if so.dtype != bool:
            vals = pd.to_numeric(so, errors="coerce")
            bad = ~vals.isin([0, 1]).to_numpy()
            if bad.any():
                raise InputError(
                    f"column {sold_out!r} must be boolean (or 0/1), got non-boolean values in "
                    f"rows {_rows(bad, idx)}"
                )
        cens = so.to_numpy().astype(bool)
    else:
        cens = np.zeros(len(panel), bool)

    key_cols = [sku] + ([market] if market else [])
    sku_codes, n_skus = _key_codes(panel[sku])
    if market:
        mkt_codes, mkt_uniques = pd.factorize(panel[market], sort=True)
        pair = sku_codes * len(mkt_uniques) + mkt_codes
        row_pairs, row_of_obs = np.unique(pair, return_inverse=True)
    else:  # the codes already number the SKUs 0..n-1 in sorted order
        row_of_obs = sku_codes
        row_pairs = np.arange(n_skus, dtype=np.int64)
    n_rows = len(row_pairs)
    per = panel[period]
    is_time = pd.api.types.is_datetime64_any_dtype(per.dtype)
    if is_time:  # hours since the first period, from the clock ticks (no Timedelta objects)
        unit = per.dt.unit
        ticks = per.to_numpy(dtype=f"datetime64[{unit}]").view(np.int64)
        per_num = (ticks - ticks.min()) / (np.timedelta64(1, "h") / np.timedelta64(1, unit))
        del ticks
    else:
        per_num = _numeric(panel, period)
    d_row = np.diff(row_of_obs)
    in_order = bool(np.all(d_row >= 0) and np.all((np.diff(per_num) > 0) | (d_row > 0)))
    del d_row
    n_obs = np.bincount(row_of_obs, minlength=n_rows)
    # Sorted by (row, period) with the same number of periods in every row (the usual
    # balanced panel): the grid is a reshape of the columns, no sort, scatter or copy.
    balanced = in_order and bool(np.all(n_obs == n_obs[0]))
    order = None if in_order else np.lexsort((per_num, row_of_obs))
    if order is not None:  # in order means strictly increasing periods: no duplicates
        sorted_rows = row_of_obs[order]
        same = (np.diff(sorted_rows) == 0) & (np.diff(per_num[order]) == 0)
        if same.any():
            dup = np.zeros(len(panel), dtype=bool)
            dup[order[1:][same]] = True
            dup[order[:-1][same]] = True
            raise InputError(
                f"panel has more than one row per ({', '.join(key_cols + [period])}) in rows "
                f"{_rows(dup, idx)}; aggregate them first (sum quantity, mean price)"
            )
    else:
        sorted_rows = row_of_obs
    if balanced:
        n_t = int(n_obs[0])
        pos = None
    else:
        starts = np.searchsorted(sorted_rows, np.arange(n_rows))
        pos = np.arange(len(panel)) - starts[sorted_rows]
        if order is not None:
            pos_sorted = pos
            pos = np.empty_like(pos_sorted)
            pos[order] = pos_sorted
        n_t = int(pos.max()) + 1

    # Every row observed at the first row's periods (a balanced panel in order, the usual
    # case): the distinct periods and their hours of day are the first row's.
    shared_periods = (
        is_time
        and balanced
        and bool(
            np.all(np.diff(per_num[:n_t]) > 0)
            and np.all(per_num.reshape(n_rows, n_t) == per_num[:n_t])
        )
    )
    period_hours = _period_hours(per_num, shared_periods, n_t) if is_time else None
    profile = (
        daily_profile
        if daily_profile is not None
        else bool(is_time and period_hours is not None and period_hours < 24)
    )
    if profile and not is_time:
        raise InputError(
            f"daily_profile=True needs datetime periods in column {period!r}, got dtype {per.dtype}"
        )
    hour_obs = None
    if profile and is_time and not shared_periods:
        hour_obs = per.dt.hour.to_numpy()

    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    logp = np.log(price_v)
    log_pref = _row_sums(logp, row_of_obs, n_rows, n_t if balanced else 0) / n_obs
    if balanced:
        x = (logp.reshape(n_rows, n_t) - log_pref[:, None]).reshape(-1)
    else:
        x = logp - log_pref[row_of_obs]
    # Each row's lowest and highest log price (runs of the row-sorted order: O(N)).
    logp_sorted = logp if order is None else logp[order]
    run_starts = np.searchsorted(sorted_rows, np.arange(n_rows))
    log_price_range = np.stack(
        [
            np.minimum.reduceat(logp_sorted, run_starts),
            np.maximum.reduceat(logp_sorted, run_starts),
        ],
        axis=1,
    )

    # Censored cells with zero sold carry no information (P(D >= 0) = 1).
    informative = ~(cens & (qty == 0))
    cens_inf = cens & (qty > 0)

    dense = bool(np.all(n_obs == n_t))
    np_dtype = np.float64 if dtype == jnp.float64 else np.float32
    # Rows padded to a bucket size with empty rows (no observations, no prior): re-fits
    # whose SKU count drifts a little reuse the compiled program. Grids are written
    # straight into padded arrays of the fit's dtype (no float64 copies to pad and cast).
    n_pad = _row_bucket(n_rows)

    def grid(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((n_pad, n_t), np_dtype)
        out[n_rows:] = 0
        if balanced:  # already in (row, period) order
            out[:n_rows] = values.reshape(n_rows, n_t)
        elif dense:  # every row has all periods: a reordering, no scatter
            out[:n_rows] = values[order].reshape(n_rows, n_t)
        else:
            out[:n_rows] = 0
            out[row_of_obs, pos] = values
        return out

    y_g = grid(qty)
    mask_g = grid(informative)
    has_int = inten is not None
    n_row_cov = len(covariates) if per_row_covariates else 0
    X = np.empty(((3 if has_int else 1) + n_row_cov, n_pad, n_t), np_dtype)
    grid(x, X[0])
    if has_int:
        grid(inten, X[1])
        grid(x * inten, X[2])
    n_params = X.shape[0] + 1
    if profile and shared_periods:  # one period grid for every row: sum over rows first
        hour_g = per.iloc[:n_t].dt.hour.to_numpy().astype(np.int32)[None, :]
    elif hour_obs is None:  # no profile: the hour is never read
        hour_g = np.zeros((1 if dense else n_pad, n_t), np.int32)
    else:
        hour_g = grid(hour_obs.astype(np_dtype))[:n_rows].astype(np.int32)
        if dense and np.all(hour_g == hour_g[:1]):
            hour_g = hour_g[:1]  # one period grid for every row: sum over rows first
        else:
            hour_g = np.pad(hour_g, [(0, n_pad - n_rows), (0, 0)])
    for j in range(n_row_cov):  # per-row effects: design columns after the intensity terms
        grid(cov[:, j], X[X.shape[0] - n_row_cov + j])
    n_cov = len(covariates) - n_row_cov  # shared effects: the pooled block
    cov_g = np.empty((n_cov, n_pad, n_t), np_dtype)
    for j in range(n_cov):
        grid(cov[:, j], cov_g[j])
    if balanced:  # the flat cell index is the panel's row number
        cens_idx = np.flatnonzero(cens_inf).astype(np.int32)
    else:
        cens_idx = (row_of_obs * n_t + pos)[cens_inf].astype(np.int32)
    cens_y = qty[cens_inf]

    first_obs = np.zeros(n_rows, dtype=np.int64)
    if order is None:  # sorted: each row's first observation is where its run starts
        first_obs = np.searchsorted(row_of_obs, np.arange(n_rows))
    else:
        first_obs[row_of_obs[order][::-1]] = order[::-1]
    sku_of_row = np.asarray(panel[sku].iloc[first_obs].to_numpy(), dtype=object)
    market_of_row = (
        np.asarray(panel[market].iloc[first_obs].to_numpy(), dtype=object) if market else None
    )
    if categories is None:
        category_of_row = np.full(n_rows, None, dtype=object)
    elif isinstance(categories, str):
        category_of_row = np.asarray(panel[categories].iloc[first_obs].to_numpy(), dtype=object)
    else:
        category_of_row = np.array([categories.get(s) for s in sku_of_row], dtype=object)
    keys = list(
        zip(
            sku_of_row.tolist(),
            (market_of_row.tolist() if market else [None] * n_rows),
            strict=True,
        )
    )
    # Priors: configured (by SKU, then category), else empirical Bayes per category.
    prior_mean, prior_prec, eb_group = _prior_arrays(
        n_params=n_params,
        keys=keys,
        sku_of_row=sku_of_row,
        category_of_row=category_of_row,
        log_pref=log_pref,
        mean_quantity=max(_masked_mean(qty, informative), 1e-3),
        priors=priors,
        pooling=pooling,
        level_priors=level_priors,
    )
    empirical_bayes = bool((eb_group >= 0).any())

    theta0 = np.zeros((n_rows, n_params))
    mean_y = _row_sums(qty, row_of_obs, n_rows, n_t if balanced else 0) / n_obs
    theta0[:, 0] = np.log(mean_y + 0.1)
    shared0 = np.zeros(_N_HOURS + n_cov)
    if init is not None:
        theta0, shared0 = _warm_start(
            init, keys, log_pref, theta0, shared0, has_int, covariates, profile, n_row_cov
        )

    tol = 1e-12 if dtype == jnp.float64 else 1e-5
    static = _Static(
        n_params=n_params,
        n_cov=n_cov,
        n_row_cov=n_row_cov,
        profile=profile,
        censored=bool(len(cens_idx)),
        count_kmax=_count_kmax(cens_y),
        empirical_bayes=empirical_bayes,
        n_groups=max(len(set(eb_group[eb_group >= 0].tolist())), 1),
        max_iter=int(max_iter),
        tol=tol,
        row_block=_ROW_BLOCK if jax.default_backend() == "cpu" else 0,
    )

    def dev(a: np.ndarray, dt: Any = dtype) -> jax.Array:
        return jnp.asarray(a, dtype=dt)

    extra = n_pad - n_rows

    def rows(a: np.ndarray, fill: float = 0.0) -> np.ndarray:
        return (
            a
            if extra == 0
            else np.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)
        )

    data = _Data(
        X=dev(X),
        y=dev(y_g),
        mask=dev(mask_g),
        hour=dev(hour_g, jnp.int32),
        cov=dev(cov_g),
        cens_idx=dev(cens_idx, jnp.int32),
        cens_y=dev(cens_y),
        prior_mean=dev(rows(prior_mean)),
        prior_prec=dev(rows(prior_prec)),
        eb_group=dev(rows(eb_group, fill=-1), jnp.int32),
        theta0=dev(rows(theta0)),
        shared0=dev(shared0),
    )
    if init is None:  # a warm start keeps the previous fit's rows
        theta0, shared0 = glm_start(data, static.row_block, static.profile)
        data = data._replace(theta0=theta0, shared0=shared0)
    return _Prepared(
        keys=keys,
        sku_of_row=sku_of_row,
        market_of_row=market_of_row,
        category_of_row=category_of_row,
        log_pref=log_pref,
        log_price_range=log_price_range,
        n_obs=n_obs,
        n_censored=np.bincount(row_of_obs[cens_inf], minlength=n_rows),
        data=data,
        static=static,
        period_hours=period_hours,
    )


def _period_hours(per_num: np.ndarray, shared_periods: bool, n_t: int) -> float | None:
    """Median step between the panel's distinct periods, in hours (``None``: one period).

    When every row has the first row's periods (``shared_periods``) the distinct periods
    are that row's: no sort of every cell (``np.unique`` of 1.4 M cells was a third of
    preparing a 20,000-SKU panel).
    """
    uniq = per_num[:n_t] if shared_periods else np.unique(per_num)
    return float(np.median(np.diff(uniq))) if len(uniq) > 1 else None


def _key_codes(column: pd.Series) -> tuple[np.ndarray, int]:
    """``pd.factorize(column, sort=True)``'s codes (int64) and the number of distinct keys.

    A panel sorted by key (the usual layout) is numbered from its runs: one comparison of
    neighbours instead of hashing every cell (hashing the SKU strings was an eighth of
    preparing a 100,000-SKU panel). Anything else (unsorted, or keys that do not order,
    such as mixed types) is factorized.
    """
    values = column.array
    if len(values) > 1:
        try:
            starts = np.flatnonzero(np.asarray(values[1:] != values[:-1], dtype=bool)) + 1
            labels = column.iloc[np.concatenate(([0], starts))].to_numpy()
            increasing = bool(np.all(labels[1:] > labels[:-1]))
        except TypeError:
            increasing = False
        if increasing:
            codes = np.zeros(len(values), dtype=np.int64)
            codes[starts] = 1
            return np.cumsum(codes, out=codes), len(starts) + 1
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), len(uniques)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` where ``mask`` (0 where it is empty), without copying them out."""
    count = np.count_nonzero(mask)
    return float(np.sum(values, where=mask) / count) if count else 0.0


def _row_sums(values: np.ndarray, row_of_obs: np.ndarray, n_rows: int, n_t: int) -> np.ndarray:
    """Sum of ``values`` per row; ``n_t > 0``: a balanced panel in (row, period) order."""
    if n_t:
        return values.reshape(n_rows, n_t).sum(axis=1)
    return np.bincount(row_of_obs, weights=values, minlength=n_rows)


def _row_bucket(n_rows: int) -> int:
    """Rows the solver runs on: 16, powers of two to 4096, then multiples of 1024."""
    if n_rows <= 16:
        return 16
    if n_rows <= 4096:
        return 1 << (n_rows - 1).bit_length()
    return 1024 * math.ceil(n_rows / 1024)


def _count_kmax(cens_y: np.ndarray) -> int:
    """Static bound for the finite-sum survival (0: use gammainc for non-integer/large y)."""
    if len(cens_y) == 0 or not np.all(cens_y == np.round(cens_y)) or cens_y.max() > 64:
        return 0
    return int(8 * math.ceil(cens_y.max() / 8))  # rounded up: fewer distinct programs


def _warm_start(
    init: ElasticityFit,
    keys: list[tuple[Any, Any]],
    log_pref: np.ndarray,
    theta0: np.ndarray,
    shared0: np.ndarray,
    has_int: bool,
    covariates: tuple[str, ...],
    profile: bool,
    n_row_cov: int,
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(init, ElasticityFit):
        raise InputError(f"init must be a previous ElasticityFit, got {type(init).__name__}")
    where = {k: i for i, k in enumerate(init.keys)}
    theta = theta0.copy()
    for r, k in enumerate(keys):
        j = where.get(k)
        if j is None:
            continue
        # Re-express the old row at the new reference price: log p/p_ref' = log p/p_ref - shift.
        shift = log_pref[r] - init.log_pref[j]
        a, b = init.params.alpha[j], init.params.elasticity[j]
        g, d = init.params.intensity_lift[j], init.params.intensity_shift[j]
        theta[r, 0] = a + b * shift
        theta[r, 1] = b
        if has_int:
            theta[r, 2] = g + d * shift
            theta[r, 3] = d
    shared = shared0.copy()
    if profile and init.daily_profile is not None:
        shared[:_N_HOURS] = init.daily_profile
    old_rows = init.row_covariate_effects or {}
    n_base = theta.shape[1] - n_row_cov
    matched = [(r, where[k]) for r, k in enumerate(keys) if k in where]
    for c, name in enumerate(covariates):
        if not n_row_cov:
            if name in init.covariate_effects:
                shared[_N_HOURS + c] = init.covariate_effects[name][0]
        elif name in old_rows:
            for r, j in matched:
                theta[r, n_base + c] = old_rows[name][j]
        elif name in init.covariate_effects:  # a shared effect starts every row
            theta[:, n_base + c] = init.covariate_effects[name][0]
    return theta, shared
