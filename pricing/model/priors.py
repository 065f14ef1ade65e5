"""Priors of the demand model: configured priors, empirical Bayes by category, the fallback.

Configured priors (``priors=``) are looked up by SKU, then by category. Rows with
neither get an empirical-Bayes prior: an unpooled fit first, then per category the
random-effects moments of DerSimonian & Laird (1986) from the unpooled elasticities
``β̂_i`` and their standard errors ``se_i``:

    w_i = 1/se_i²,  μ_FE = Σ w β̂ / Σ w,  Q = Σ w (β̂ − μ_FE)²,
    τ² = max(τ_min², (Q − (k − 1)) / (Σ w − Σ w² / Σ w)),  μ = Σ w* β̂ / Σ w*,  w* = 1/(se² + τ²)

then the pooled refit with ``β_i ~ N(μ_c, τ_c²)``. With fewer than 3 usable rows in all,
the prior is :data:`FALLBACK_PRIOR`; a category with fewer than 3 uses the pool of all
rows. When pooling, ``α`` gets a weak ``N(log ȳ, 5²)`` and ``γ, δ`` weak ``N(0, 2²)``
priors.

References:
    DerSimonian, R. and Laird, N. (1986). Meta-analysis in clinical trials. Controlled
    Clinical Trials 7(3), 177-188.
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
from pricing.model.likelihood import _Static

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
    has_intensity: bool,
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
    has_int = has_intensity
    # Priors: configured (by SKU, then category), else empirical Bayes per category.
    prior_mean = np.zeros((n_rows, n_params))
    prior_prec = np.zeros((n_rows, n_params))
    eb_group = np.full(n_rows, -1, dtype=np.int32)
    use_prior = pooling or priors is not None
    if use_prior:
        overall = max(mean_quantity, 1e-3)
        prior_mean[:, 0] = math.log(overall)
        prior_prec[:, 0] = 1.0 / _ALPHA_SD**2
        if has_int:
            prior_prec[:, 2:] = 1.0 / _WEAK_SD**2
        table = {name: _prior_of(entry, str(name)) for name, entry in (priors or {}).items()}
        by_sku = pd.Series(sku_of_row).map(lambda v: table.get(v))
        by_cat = pd.Series(category_of_row).map(lambda v: table.get(v) if v is not None else None)
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


def _empirical_bayes(
    beta: jax.Array, se: jax.Array, n_obs_ok: jax.Array, group: jax.Array, st: _Static
) -> tuple[jax.Array, jax.Array]:
    """DerSimonian-Laird mean and spread of β per group; small groups use the global pool."""
    g = st.n_groups
    valid = n_obs_ok & jnp.isfinite(se) & (se > 0) & (se < 10.0) & jnp.isfinite(beta) & (group >= 0)
    w = jnp.where(valid, 1.0 / jnp.where(valid, se, 1.0) ** 2, 0.0)
    b = jnp.where(valid, beta, 0.0)
    # Group g is the global pool (every valid row).
    seg = jnp.where(valid, group, g)

    def moments(segments: jax.Array, n_seg: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        sw = jax.ops.segment_sum(w, segments, n_seg)
        swb = jax.ops.segment_sum(w * b, segments, n_seg)
        k = jax.ops.segment_sum(valid.astype(w.dtype), segments, n_seg)
        mu_fe = swb / jnp.maximum(sw, 1e-30)
        q = jax.ops.segment_sum(w * (b - mu_fe[segments]) ** 2, segments, n_seg)
        sw2 = jax.ops.segment_sum(w * w, segments, n_seg)
        denom = jnp.maximum(sw - sw2 / jnp.maximum(sw, 1e-30), 1e-30)
        tau2 = jnp.maximum((q - (k - 1.0)) / denom, _TAU_MIN**2)
        ws = jnp.where(valid, 1.0 / (jnp.where(valid, se, 1.0) ** 2 + tau2[segments]), 0.0)
        mu = jax.ops.segment_sum(ws * b, segments, n_seg) / jnp.maximum(
            jax.ops.segment_sum(ws, segments, n_seg), 1e-30
        )
        return mu, jnp.sqrt(tau2), k

    mu_g, tau_g, k_g = moments(seg, g + 1)
    mu_all, tau_all, k_all = moments(jnp.zeros_like(seg), 1)
    enough = k_g >= 3
    mu_g = jnp.where(enough, mu_g, mu_all[0])
    tau_g = jnp.where(enough, tau_g, tau_all[0])
    # Fewer than 3 usable SKUs in all: no spread can be estimated, so fall back to a
    # weakly informative prior around a typical retail elasticity instead of pinning
    # each SKU to its own first-stage estimate.
    mu_g = jnp.where(k_all[0] >= 3, mu_g, FALLBACK_PRIOR[0])
    tau_g = jnp.where(k_all[0] >= 3, tau_g, FALLBACK_PRIOR[1])
    row = jnp.where(group >= 0, group, g)
    return mu_g[row], tau_g[row]


_empirical_bayes_jit = jax.jit(_empirical_bayes, static_argnames=("st",))
