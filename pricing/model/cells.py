"""The demand model's cells laid out as padded device arrays (no pandas).

Both entry points end here: :func:`~pricing.model.fit_elasticity` after its pandas panel
is checked and numbered by categorical codes (:mod:`~pricing.model.preparation`), and
:func:`~pricing.model.fit_elasticity_arrays` straight from a caller's ``[S, T]`` grids.
:class:`_Cells` is the contract between them: flat cell arrays with each cell's row code
(and, unless the panel is balanced and in (row, period) order, its period position), and
one entry per row for the keys. Every step below is a whole-array operation (reshape,
bincount, reduceat, scatter): no Python per SKU or per cell. Rows are padded to a bucket
size so re-fits whose SKU count drifts reuse the compiled program.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pricing.exceptions import InputError
from pricing.model.likelihood import N_HOURS as _N_HOURS
from pricing.model.likelihood import _Data, _Static
from pricing.model.priors import _prior_arrays
from pricing.model.result import ElasticityFit
from pricing.model.start import glm_start

_ROW_BLOCK = 1024  # CPU: rows per cache block of the per-row sums


@dataclass(frozen=True)
class _Cells:
    """A checked panel as flat cell arrays, numbered by row (the preparation's input).

    ``balanced``: the cells are in (row, period) order with ``n_t`` periods in every row,
    so each ``[S, T]`` grid is a reshape. Otherwise ``pos`` gives each cell's period
    position within its row, and ``order`` (``None`` when already in (row, period) order)
    the permutation that sorts the cells so.
    """

    price: np.ndarray  # [N] > 0
    quantity: np.ndarray  # [N] >= 0
    intensity: np.ndarray | None  # [N]
    covariates: tuple[np.ndarray, ...]  # C x [N]
    censored: np.ndarray  # [N] bool: the period ended sold out
    row_of_obs: np.ndarray  # [N] int64 row code 0..n_rows-1
    n_rows: int
    n_t: int  # periods per row (the longest row's)
    balanced: bool
    pos: np.ndarray | None  # [N] period position within the row; None when balanced
    order: np.ndarray | None  # [N] (row, period) sort of the cells; None when in order
    profile: bool  # fit the shared hour-of-day profile
    hour_shared: np.ndarray | None  # [n_t] hour of day of every row's periods
    hour_of_obs: np.ndarray | None  # [N] hour of day per cell (profile, no shared grid)
    period_hours: float | None
    sku_of_row: np.ndarray  # [n_rows] object
    market_of_row: np.ndarray | None  # [n_rows] object
    category_of_row: np.ndarray  # [n_rows] object (None: no category)
    n_obs: np.ndarray  # [n_rows] cells per row (>= 1)


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


def _profile_wanted(
    daily_profile: bool | None, is_time: bool, period_hours: float | None, what: str
) -> bool:
    """Whether to fit the daily profile (``None``: datetime periods shorter than a day)."""
    if daily_profile is None:
        return bool(is_time and period_hours is not None and period_hours < 24)
    if daily_profile and not is_time:
        raise InputError(f"daily_profile=True needs datetime periods in {what}")
    return bool(daily_profile)


def _prepare_cells(
    cells: _Cells,
    *,
    n_row_cov: int,
    covariate_names: tuple[str, ...],
    priors: Mapping[Any, Any] | None,
    pooling: bool,
    init: ElasticityFit | None,
    max_iter: int,
    level_priors: Mapping[Any, tuple[float, float, float]] | None,
) -> _Prepared:
    """Lay the cells out as the solver's padded arrays, with priors and the start."""
    c = cells
    n_rows, n_t, balanced, order, pos = c.n_rows, c.n_t, c.balanced, c.order, c.pos
    row_of_obs, qty, cens = c.row_of_obs, c.quantity, c.censored
    inten, profile = c.intensity, c.profile
    sorted_rows = row_of_obs if order is None else row_of_obs[order]
    n_obs = c.n_obs
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    logp = np.log(c.price)
    log_pref = _row_sums(logp, row_of_obs, n_rows, n_t if balanced else 0) / n_obs
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
    X = np.empty(((3 if has_int else 1) + n_row_cov, n_pad, n_t), np_dtype)
    if balanced:  # x = log p - log p_ref written straight into its grid (no flat copy)
        X[0, n_rows:] = 0
        np.subtract(logp.reshape(n_rows, n_t), log_pref[:, None], out=X[0, :n_rows])
    else:
        grid(logp - log_pref[row_of_obs], X[0])
    if has_int:
        grid(inten, X[1])
        np.multiply(X[0], X[1], out=X[2])  # x * I on the grids (padding stays 0)
    n_params = X.shape[0] + 1
    if profile and c.hour_shared is not None:  # one grid for every row: sum over rows first
        hour_g = c.hour_shared.astype(np.int32)[None, :]
    elif not profile or c.hour_of_obs is None:  # no profile: the hour is never read
        hour_g = np.zeros((1 if dense else n_pad, n_t), np.int32)
    else:
        hour_g = grid(c.hour_of_obs.astype(np_dtype))[:n_rows].astype(np.int32)
        if dense and np.all(hour_g == hour_g[:1]):
            hour_g = hour_g[:1]  # one period grid for every row: sum over rows first
        else:
            hour_g = np.pad(hour_g, [(0, n_pad - n_rows), (0, 0)])
    for j in range(n_row_cov):  # per-row effects: design columns after the intensity terms
        grid(c.covariates[j], X[X.shape[0] - n_row_cov + j])
    n_cov = len(c.covariates) - n_row_cov  # shared effects: the pooled block
    cov_g = np.empty((n_cov, n_pad, n_t), np_dtype)
    for j in range(n_cov):
        grid(c.covariates[j], cov_g[j])
    if balanced:  # the flat cell index is the panel's row number
        cens_idx = np.flatnonzero(cens_inf).astype(np.int32)
    else:
        cens_idx = (row_of_obs * n_t + pos)[cens_inf].astype(np.int32)
    cens_y = qty[cens_inf]

    sku_of_row, market_of_row = c.sku_of_row, c.market_of_row
    category_of_row = c.category_of_row
    keys = list(
        zip(
            sku_of_row.tolist(),
            (market_of_row.tolist() if market_of_row is not None else [None] * n_rows),
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
            init, keys, log_pref, theta0, shared0, has_int, covariate_names, profile, n_row_cov
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
        period_hours=c.period_hours,
    )


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
