"""The solver's starting point: one IRLS step from ``μ = y + ½`` for every row at once.

The classic GLM start (McCullagh & Nelder 1989, §2.5): with working weights ``μ`` and working
response ``log μ`` at ``μ = y + ½``, each row's start is the weighted least-squares fit

.. math::

    \\theta^{(0)}_i = \\arg\\min_\\theta \\sum_t \\mu_{it} (\\log \\mu_{it} - a_{it}'\\theta)^2
        + \\sum_p \\pi_{ip} (\\theta_p - m_{ip})^2

of ``log(y + ½)`` on the row's design ``a = [1, x, I, x·I, ...]``, with the row's prior
(precision ``π``, mean ``m``) as ridge. It costs one pass over the panel and a ``[P, P]``
solve per row, and lands close to the MAP: on a 20,000-SKU x 72 h panel (intercept, log
price, intensity) the Newton loop then takes 5 iterations instead of 13 from the old start
``(log(ȳ + 0.1), 0, ...)``, where 12 % of the rows overshot on the first step and spent four
iterations raising their damping. The shared block (daily profile, covariates) starts at 0
as before. Sold-out cells count as if ``y`` were the demand; it is only a start.

References:
    McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed., §2.5.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pricing.model.likelihood import N_HOURS, _Data
from pricing.model.solver import _chol_solve, _row_system, _solve_sum_zero

__all__ = ["glm_start"]


@functools.partial(jax.jit, static_argnames=("block", "profile"))
def glm_start(data: _Data, block: int = 0, profile: bool = False) -> tuple[jax.Array, jax.Array]:
    """``([S, P], shared)`` start; rows whose system fails keep ``data.theta0``.

    The weighted sums are the solver's row system (cache-blocked by ``block`` rows) with
    ``log μ`` for the cell gradient and ``μ`` for the curvature, taken at ``θ = 2m`` so
    that its prior term ``π (θ - m)`` adds the ridge's ``π m`` to the right-hand side.
    With the daily ``profile`` on a period grid every row shares, the hour-of-day effects
    are fitted jointly with the rows (:func:`_with_profile`); otherwise the shared block
    starts at ``data.shared0``.
    """
    mu = data.y + 0.5
    weight = data.mask * mu
    response = weight * jnp.log(mu)
    prec = data.prior_prec
    rhs, hess = _row_system(2.0 * data.prior_mean, response, weight, data, prec, block)
    # A light ridge: a flat column (one price only, no intensity) gets a 0 coefficient.
    diag = jnp.diagonal(hess, axis1=1, axis2=2)
    ridge = 1e-4 * diag + 1e-6 * (jnp.max(diag, axis=1, keepdims=True) + 1.0)
    hess = hess + jax.vmap(jnp.diag)(ridge)
    shared = data.shared0
    if profile and data.hour.shape[0] == 1:
        theta, hours = _with_profile(hess, rhs, weight, response, data)
        shared = shared.at[:N_HOURS].set(jnp.where(jnp.all(jnp.isfinite(hours)), hours, 0.0))
    else:
        theta = _chol_solve(hess, rhs)
    ok = jnp.all(jnp.isfinite(theta), axis=1, keepdims=True)
    return jnp.where(ok, jnp.clip(theta, -30.0, 30.0), data.theta0), shared


def _with_profile(
    hess: jax.Array, rhs: jax.Array, weight: jax.Array, response: jax.Array, data: _Data
) -> tuple[jax.Array, jax.Array]:
    """The weighted least squares with hour-of-day effects ``s`` shared by every row.

    Per row ``A θ + B s = c``, for the hours ``Σ B'θ + C s = d``: ``s`` solves the hours'
    Schur complement ``(C - Σ B'A⁻¹B) s = d - Σ B'A⁻¹c`` (mean zero over the observed
    hours, as in the solver: the rows' levels carry the mean), then ``θ = A⁻¹(c - B s)``.
    Without it the solver started every row without the profile and spent its first
    iterations moving both.
    """
    one_hot = jax.nn.one_hot(data.hour[0], N_HOURS, dtype=weight.dtype)  # [T, 24]
    cols = [weight] + [data.X[p] * weight for p in range(hess.shape[1] - 1)]
    cross = jnp.stack([c @ one_hot for c in cols], axis=1)  # [S, P, 24]
    a_inv_b = jnp.stack([_chol_solve(hess, cross[:, :, h]) for h in range(N_HOURS)], axis=2)
    a_inv_c = _chol_solve(hess, rhs)
    curvature = jnp.sum(weight, axis=0) @ one_hot
    observed = curvature > 0
    schur = jnp.diag(curvature) - jnp.einsum("sph,spk->hk", cross, a_inv_b)
    schur = schur + jnp.diag(jnp.where(observed, 1e-6 * (jnp.max(curvature) + 1.0), 1.0))
    reduced = jnp.sum(response, axis=0) @ one_hot - jnp.einsum("sph,sp->h", cross, a_inv_c)
    hours = _solve_sum_zero(schur, reduced, observed.astype(weight.dtype))
    return a_inv_c - jnp.einsum("sph,h->sp", a_inv_b, hours), hours
