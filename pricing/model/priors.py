"""Priors of the demand model: configured priors, empirical Bayes by category, the fallback.

Configured priors (``priors=``) are looked up by SKU, then by category. Rows with
neither get an empirical-Bayes prior, in three steps:

1. an unpooled fit gives each row's elasticity ``β̂_i`` and Laplace error ``se_i``;
2. overdispersion: the Pearson statistic of that fit, pooled over the category, gives
   ``φ = Σ (y − μ)²/μ / Σ (n − P)`` (at least 1). Weekly retail panels reach ``φ`` in the
   hundreds to thousands, so the Poisson errors understate the real ones by ``sqrt(φ)``;
   the errors are scaled by it (quasi-likelihood, McCullagh & Nelder 1989, §4.5);
3. the category's mean ``μ`` and spread ``τ`` are the posterior mode of a robust
   random-effects model: ``β̂_i ~ t₄`` around ``μ`` with variance ``se_i² + τ²`` (elasticities drawn from a
   heavy-tailed population, so a few wild rows do not widen ``τ`` for the others) with
   the hyperprior ``τ ~ half-Cauchy(0, 1)`` (Gelman 2006: within one category,
   elasticities differ by well under one; the Cauchy tail admits more where the data
   insist), times ``τ`` (the boundary-avoiding factor of Chung et al. 2013: ``τ`` is the
   posterior mode, which under the half-Cauchy alone sits at 0 for small categories and
   pins every row to the mean); ``τ`` is searched on a grid from 0.05 to 5, ``μ`` by IRLS.

The pooled refit then minimises ``loss + φ · prior`` with ``β_i ~ N(μ_c, τ_i²)``:
``τ_i = τ_c`` except for a row far from ``μ_c`` by its own (scaled) error, which gets the
scale of its place in the t mixture (its data mostly speak for it), unless its elasticity
is positive: such a row keeps the full category prior and is flagged
(:attr:`~pricing.model.result.ElasticityFit.positive_elasticity`). A category with fewer
than 3 usable rows uses the pool of all rows; fewer than 3 in all, :data:`FALLBACK_PRIOR`.
When pooling, ``α`` gets a weak ``N(log ȳ, 5²)`` and ``γ, δ`` weak ``N(0, 2²)`` priors.

References:
    McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed., §4.5.
    Gelman, A. (2006). Prior distributions for variance parameters in hierarchical
    models. Bayesian Analysis 1(3), 515-534.
    Chung, Y., Rabe-Hesketh, S., Dorie, V., Gelman, A. and Liu, J. (2013). A nondegenerate
    penalized likelihood estimator for variance parameters in multilevel models.
    Psychometrika 78(4), 685-709.
    Gelman, A. et al. (2013). Bayesian Data Analysis, 3rd ed., §17.2 (robust, t-distributed
    hierarchical models and their normal scale-mixture form).
    Efron, B. and Morris, C. (1975). Data analysis using Stein's estimator and its
    generalizations. JASA 70(350), 311-319 (empirical Bayes shrinkage).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model.likelihood import _Data, _linear_predictor, _Static

__all__ = ["FALLBACK_PRIOR", "ElasticityPrior"]


class ElasticityPrior(NamedTuple):
    """A normal prior ``N(mean, sd²)`` on an own-price elasticity."""

    mean: float
    sd: float


FALLBACK_PRIOR = ElasticityPrior(mean=-1.0, sd=2.0)
"""Elasticity prior where neither the operator nor the data give one: a weakly
informative prior around a unit-elastic response, the typical retail elasticity
(it unpacks as ``mean, sd``)."""

_TAU_MIN = 0.05  # floor of the category spread: keeps the prior precision finite and
# stops an undetectable spread (tau^2 estimated as 0) from claiming near-zero errors
_WEAK_SD = 2.0  # prior sd of intensity lift / shift when pooling
_ALPHA_SD = 5.0  # prior sd of the baseline log rate when pooling
_UNPOOLED_PREC = 1e-8  # stage-one ridge on beta so a constant-price SKU stays finite
_NU = 4.0  # degrees of freedom of the t population of elasticities in a category
_TAU_SCALE = 1.0  # half-Cauchy scale of the category spread
_TAU_GRID = np.exp(np.linspace(np.log(_TAU_MIN), np.log(5.0), 32))  # steps of 16 %
_IRLS_STEPS = 6
_ROUNDS = 2  # coordinate-ascent rounds (mu, then tau) of the category moments


def _prior_of(entry: Any, name: str) -> tuple[float, float]:
    if hasattr(entry, "mean") and hasattr(entry, "sd"):
        mean, sd = float(entry.mean), float(entry.sd)
    else:
        try:
            mean, sd = (float(v) for v in entry)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"priors[{name!r}] must be (mean, sd) or an object with .mean and .sd, got {entry!r}"
            ) from exc
    if not (math.isfinite(mean) and math.isfinite(sd) and sd > 0):
        raise InputError(
            f"priors[{name!r}] must have a finite mean and sd > 0, got mean={mean} sd={sd}"
        )
    return mean, sd


def _prior_arrays(
    *,
    n_params: int,
    keys: list[tuple[Any, Any]],
    sku_of_row: np.ndarray,
    category_of_row: np.ndarray,
    log_pref: np.ndarray,
    mean_quantity: float,
    priors: Mapping[Any, Any] | None,
    pooling: bool,
    level_priors: Mapping[Any, tuple[float, float, float]] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prior means and precisions ``[S, P]`` and the empirical-Bayes group per row.

    Configured priors apply by SKU, then by category; every other row gets group ``>= 0``
    (its category's empirical-Bayes prior); ``-1`` marks a row with a fixed prior (or
    none, unpooled).
    """
    n_rows = len(keys)
    # Priors: configured (by SKU, then category), else empirical Bayes per category.
    prior_mean = np.zeros((n_rows, n_params))
    prior_prec = np.zeros((n_rows, n_params))
    eb_group = np.full(n_rows, -1, dtype=np.int32)
    use_prior = pooling or priors is not None
    if use_prior:
        overall = max(mean_quantity, 1e-3)
        prior_mean[:, 0] = math.log(overall)
        prior_prec[:, 0] = 1.0 / _ALPHA_SD**2
        # Intensity lift and shift, and per-row covariate effects (empirical Bayes
        # replaces the latter's where the row has a category).
        prior_prec[:, 2:] = 1.0 / _WEAK_SD**2
        table = {name: _prior_of(entry, str(name)) for name, entry in (priors or {}).items()}
        configured = np.zeros(n_rows, dtype=bool)
        if table:  # no configured priors (the usual case): no per-row look-up at all
            by_sku = pd.Series(sku_of_row).map(lambda v: table.get(v))
            by_cat = pd.Series(category_of_row).map(
                lambda v: table.get(v) if v is not None else None
            )
            chosen = by_sku.where(by_sku.notna(), by_cat)
            configured = chosen.notna().to_numpy()
        if configured.any():
            pairs = np.array(chosen[configured].tolist(), dtype=float)
            prior_mean[configured, 1] = pairs[:, 0]
            prior_prec[configured, 1] = 1.0 / pairs[:, 1] ** 2
        if level_priors:
            # A level prior states the log rate at a given price; move it to the row's
            # reference price along the elasticity prior's mean (N(-1, .) without one).
            beta0 = np.where(configured, prior_mean[:, 1], FALLBACK_PRIOR[0])
            for i, key in enumerate(keys):
                entry = level_priors.get(key)
                if entry is None:
                    continue
                log_rate, sd, at_price = (float(v) for v in entry)
                if not (math.isfinite(log_rate) and sd > 0 and at_price > 0):
                    raise InputError(
                        f"level_priors[{key!r}] must be (log rate, sd > 0, price > 0), "
                        f"got {entry!r}"
                    )
                prior_mean[i, 0] = log_rate + beta0[i] * (log_pref[i] - math.log(at_price))
                prior_prec[i, 0] = 1.0 / sd**2
        if (~configured).any():
            codes, _ = pd.factorize(
                pd.Series(category_of_row[~configured], dtype=object), use_na_sentinel=False
            )
            eb_group[~configured] = codes
    return prior_mean, prior_prec, eb_group


class _PooledPrior(NamedTuple):
    """The pooled stage's priors, from the unpooled stage's fit."""

    mean: jax.Array  # [S, P] prior means
    sd: jax.Array  # [S] elasticity prior sd
    prec: jax.Array  # [S, P] prior precisions in units of the Poisson loss
    dispersion: jax.Array  # [S] Pearson dispersion (1 outside empirical Bayes)


def _group_sum(values: jax.Array, segments: jax.Array, n_seg: int) -> jax.Array:
    """Sums per segment; one segment is a plain reduction (no scatter, several times faster
    on CPU)."""
    if n_seg == 1:
        return jnp.sum(values, axis=-1, keepdims=True)
    return jax.ops.segment_sum(values, segments, n_seg)


def _dispersion(theta: jax.Array, shared: jax.Array, data: _Data, st: _Static) -> jax.Array:
    """Pearson dispersion ``φ = Σ (y − μ)²/μ / Σ (n − P)`` per empirical-Bayes group, ≥ 1.

    Poisson counts have variance μ; retail panels have many times that (unmodelled
    week-to-week swings), and the Poisson likelihood then overstates each row's evidence
    by the factor φ (quasi-likelihood, McCullagh & Nelder 1989, §4.5). Pooled over the
    group, φ is stable for short rows; floored at 1 so Poisson data are left as they are.
    Sold-out cells are left out (their counts are bounds).
    """
    mu = jnp.exp(jnp.clip(_linear_predictor(theta, shared, data, st), -30.0, 30.0))
    mask = data.mask
    if st.censored:
        mask = mask.reshape(-1).at[data.cens_idx].set(0.0).reshape(mask.shape)
    tiny = jnp.finfo(mu.dtype).tiny
    pearson = jnp.sum(mask * (data.y - mu) ** 2 / jnp.maximum(mu, tiny), axis=1)
    dof = jnp.maximum(jnp.sum(mask, axis=1) - st.n_params, 0.0)
    grouped = data.eb_group >= 0
    seg = jnp.where(grouped, data.eb_group, st.n_groups)
    ratio = _group_sum(jnp.where(grouped, pearson, 0.0), seg, st.n_groups + 1) / jnp.maximum(
        _group_sum(jnp.where(grouped, dof, 0.0), seg, st.n_groups + 1), 1.0
    )
    return jnp.where(grouped, jnp.maximum(ratio[seg], 1.0), 1.0)


def _t_location(
    b: jax.Array, var: jax.Array, weight: jax.Array, seg: jax.Array, n_seg: int
) -> jax.Array:
    """Location of a Student-t (``_NU`` dof) sample per segment, by IRLS."""
    w = weight / var
    mu = _group_sum(w * b, seg, n_seg) / jnp.maximum(_group_sum(w, seg, n_seg), 1e-30)
    for _ in range(_IRLS_STEPS):
        w = weight * (_NU + 1.0) / (_NU + (b - mu[seg]) ** 2 / var) / var
        mu = _group_sum(w * b, seg, n_seg) / jnp.maximum(_group_sum(w, seg, n_seg), 1e-30)
    return mu


def _moments(
    b: jax.Array, se: jax.Array, weight: jax.Array, seg: jax.Array, n_seg: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Robust category mean and spread: the posterior mode of ``(μ, τ)`` per segment.

    Model: ``β̂_i = β_i + e_i``, ``e_i ~ N(0, se_i²)``, ``β_i ~ t_ν(μ, τ)`` with ``ν = 4``,
    approximated as ``β̂_i ~ t_ν`` around ``μ`` with variance ``se_i² + τ²``;
    ``τ ~ half-Cauchy(0, 1)`` times ``τ`` (boundary-avoiding, see the module docstring);
    flat on ``μ``. The heavy tails let a few wild rows sit far out without widening ``τ``
    for the rest; the hyperprior keeps ``τ`` on the scale elasticities of one category
    differ by. Coordinate ascent from ``τ = 0.5``: ``μ`` by IRLS at the current ``τ``, then
    ``τ`` on a log grid from ``τ_min`` to 5 at that ``μ`` (``_ROUNDS`` times), then ``μ``
    once more. Rows with ``weight`` 0 take no part.
    """
    s2 = se**2
    scale = (_NU - 2.0) / _NU  # squared t scale for variance se² + τ² (t_ν: ν/(ν − 2) scale²)
    grid = jnp.asarray(_TAU_GRID, b.dtype)
    prior = jnp.log1p((grid / _TAU_SCALE) ** 2) - jnp.log(grid)  # [G]
    tau = jnp.full((n_seg,), 0.5, b.dtype)
    for _ in range(_ROUNDS):
        mu = _t_location(b, (s2 + tau[seg] ** 2) * scale, weight, seg, n_seg)
        dev2 = (b - mu[seg]) ** 2
        var = (s2[None, :] + grid[:, None] ** 2) * scale  # [G, S]
        terms = 0.5 * (_NU + 1.0) * jnp.log1p(dev2[None, :] / var / _NU) + 0.5 * jnp.log(var)
        nll = jax.vmap(lambda t: _group_sum(weight * t, seg, n_seg))(terms)  # [G, n_seg]
        tau = grid[jnp.argmin(nll + prior[:, None], axis=0)]
    mu = _t_location(b, (s2 + tau[seg] ** 2) * scale, weight, seg, n_seg)
    return mu, tau, _group_sum(weight, seg, n_seg)


def _empirical_bayes(
    beta: jax.Array,
    se: jax.Array,
    n_obs_ok: jax.Array,
    group: jax.Array,
    st: _Static,
    elasticity: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Per row: its group's prior mean and the prior sd (``τ``, wider for an outlier).

    Groups with fewer than 3 usable rows use the pool of all rows; fewer than 3 in all,
    :data:`FALLBACK_PRIOR` (for a per-row covariate effect, the weak ``N(0, 2²)``). A row
    far from its group's mean (``r = (β̂ − μ) / sqrt(se² + τ²)``) gets the sd of its place
    in the t mixture, ``τ / sqrt(w)`` with ``w = min(1, (ν + 1) / (ν + r²))``: a precisely
    measured outlier keeps what its data say. Not so a positive elasticity
    (``elasticity=True``): it keeps ``τ`` and is pulled toward the group's mean.
    """
    g = st.n_groups
    valid = n_obs_ok & jnp.isfinite(se) & (se > 0) & (se < 10.0) & jnp.isfinite(beta) & (group >= 0)
    b = jnp.where(valid, beta, 0.0)
    s = jnp.where(valid, se, 1.0)
    weight = valid.astype(b.dtype)
    seg = jnp.where(valid, group, 0)  # rows left out weigh 0 wherever they sit
    mu_g, tau_g, k_g = _moments(b, s, weight, seg, g)
    if g == 1:  # the only group is the pool of all rows
        mu_all, tau_all, k_all = mu_g, tau_g, k_g
    else:
        mu_all, tau_all, k_all = _moments(b, s, weight, jnp.zeros_like(seg), 1)
    enough = k_g >= 3
    mu_g = jnp.where(enough, mu_g, mu_all[0])
    tau_g = jnp.where(enough, tau_g, tau_all[0])
    # Fewer than 3 usable SKUs in all: no spread can be estimated, so fall back to a
    # weakly informative prior around a typical retail elasticity instead of pinning
    # each SKU to its own first-stage estimate.
    fallback = FALLBACK_PRIOR if elasticity else ElasticityPrior(0.0, _WEAK_SD)
    mu_g = jnp.where(k_all[0] >= 3, mu_g, fallback.mean)
    tau_g = jnp.where(k_all[0] >= 3, tau_g, fallback.sd)
    row = jnp.where(group >= 0, group, 0)  # rows without a group: their prior is not used
    mu, tau = mu_g[row], tau_g[row]
    r2 = (b - mu) ** 2 / ((jnp.where(valid, se, 1.0) ** 2 + tau**2) * (_NU - 2.0) / _NU)
    w = jnp.minimum(1.0, (_NU + 1.0) / (_NU + r2))
    keeps_tau = (beta > 0.0) if elasticity else jnp.zeros_like(valid)
    w = jnp.where(valid & ~keeps_tau & (k_all[0] >= 3), w, 1.0)
    return mu, tau / jnp.sqrt(w)


def _pooled_prior(
    theta: jax.Array,
    shared: jax.Array,
    cov_theta: jax.Array,
    data: _Data,
    prec: jax.Array,
    st: _Static,
) -> _PooledPrior:
    """Priors of the pooled stage from the unpooled stage's ``theta`` and covariances.

    The unpooled standard errors are scaled by ``sqrt(φ)`` (:func:`_dispersion`) before the
    category moments, and the pooled stage minimises ``loss + φ · prior`` (the
    quasi-likelihood posterior ``loss / φ + prior``, times ``φ``): on an overdispersed
    panel the data weigh what they are worth against the category. The elasticity
    (column 1) and each per-row covariate effect (the last ``st.n_row_cov`` columns) are
    pooled this way.
    """
    needs = data.eb_group >= 0
    phi = _dispersion(theta, shared, data, st)
    n_obs = jnp.sum(data.mask, axis=1)
    mean = data.prior_mean
    pooled_cols = [1, *range(st.n_params - st.n_row_cov, st.n_params)]
    for k in pooled_cols:
        se = jnp.sqrt(jnp.maximum(cov_theta[:, k, k], 0.0) * phi)
        mu, sd = _empirical_bayes(theta[:, k], se, n_obs >= 3, data.eb_group, st, k == 1)
        mean = mean.at[:, k].set(jnp.where(needs, mu, mean[:, k]))
        prec = prec.at[:, k].set(jnp.where(needs, 1.0 / sd**2, prec[:, k]))
    sd_beta = jnp.where(prec[:, 1] > 0, 1.0 / jnp.sqrt(prec[:, 1]), jnp.inf)
    return _PooledPrior(mean, sd_beta, prec * phi[:, None], phi)


_pooled_prior_jit = jax.jit(_pooled_prior, static_argnames=("st",))
