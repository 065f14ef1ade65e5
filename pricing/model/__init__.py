"""The demand model: Poisson log-linear demand with intensity, one MAP fit for all SKUs.

For SKU(-market) row ``i`` in period ``t`` with price ``p``, intensity ``I`` and covariates ``z``:

.. math::

    \\log \\lambda_{it} = \\alpha_i + s(h_t) + \\gamma_i I_{it}
        + (\\beta_i + \\delta_i I_{it})\\, x_{it} + \\theta' z_{it},
    \\qquad x_{it} = \\log(p_{it} / p^{\\mathrm{ref}}_i),
    \\qquad y_{it} \\sim \\mathrm{Poisson}(\\lambda_{it})

``λ`` is expected units per period (the period length Δt is absorbed into ``α``, so hourly
drop panels and weekly retail panels fit the same way). ``p_ref`` is the SKU's geometric
mean price, so ``x`` is centred per SKU (float32 Newton then converges in a few steps).
``β`` is the own-price elasticity at zero intensity; at intensity ``I`` it is ``β + δ I``;
``γ`` is the demand lift per unit of intensity; ``s`` a shared hour-of-day profile
(mean zero over observed hours); ``θ`` shared covariate effects (promotion, display, ...).

Loss (negative log posterior), summed over observed cells:

- uncensored: ``λ − y log λ + log y!``
- sold out (censored): ``−log P(D ≥ y) = −log P(y, λ)`` with ``P`` the regularised lower
  incomplete gamma function (``jax.scipy.special.gammainc``); for integer sell-out counts
  up to 64 the same quantity is computed by exact finite Poisson sums, which are several
  times cheaper than XLA's generic series (the tests check the two agree).
- prior: ``(β_i − μ_c)² / (2 τ_c²)`` per SKU in category ``c`` plus weak ``N(0, 2²)`` priors
  on ``γ, δ`` and ``N(log ȳ, 5²)`` on ``α`` when pooling.

Solver: block-coordinate Newton (IRLS). Per iteration, every SKU takes a Newton step on
its own ``[α, β, γ, δ]`` (a batched ``[S, P, P]`` solve, with gradient ``X'(μ − y)`` and
Hessian ``X' diag(μ) X`` for uncensored cells and the exact censored terms below), then the
shared block ``[s, θ]`` takes one pooled Newton step at the updated rows. For a censored
cell with ``r = exp(y η − λ − log Γ(y) − log P(y, λ))``:

    ∂ℓ/∂η = −r,    ∂²ℓ/∂η² = r (r + λ − y)

Empirical Bayes (``priors=None`` or a SKU without a configured prior): an unpooled fit
first, then per category the random-effects moments of DerSimonian & Laird (1986) from the
unpooled elasticities ``β̂_i`` and their standard errors ``se_i``:

    w_i = 1/se_i²,  μ_FE = Σ w β̂ / Σ w,  Q = Σ w (β̂ − μ_FE)²,
    τ² = max(τ_min², (Q − (k − 1)) / (Σ w − Σ w² / Σ w)),  μ = Σ w* β̂ / Σ w*,  w* = 1/(se² + τ²)

then the pooled refit. With fewer than 3 usable SKUs in all, the prior falls back to
``N(-1, 2²)``; a category with fewer than 3 uses the pool of all SKUs. Standard errors are Laplace: ``se(β_i) = sqrt([H_i⁻¹]_ββ)`` at the
MAP, ``H_i`` the SKU's block of the Hessian (shared parameters held fixed).

The whole fit (both stages, all iterations) is one ``jax.jit`` program; it runs on the
default JAX device in float32, or float64 when ``jax_enable_x64`` is on.

References:
    McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed. (IRLS).
    DerSimonian, R. and Laird, N. (1986). Meta-analysis in clinical trials. Controlled
    Clinical Trials 7(3), 177-188.
    Efron, B. and Morris, C. (1975). Data analysis using Stein's estimator and its
    generalizations. JASA 70(350), 311-319 (empirical Bayes shrinkage).
    Tierney, L. and Kadane, J. B. (1986). Accurate approximations for posterior moments and
    marginal densities. JASA 81(393), 82-86 (Laplace approximation).
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import gammainc, gammaln

from pricing.exceptions import InputError

__all__ = ["FALLBACK_PRIOR", "DemandParams", "ElasticityFit", "fit_elasticity"]

_FORMAT_VERSION = 1
_MAX_ROWS_SHOWN = 10
_N_HOURS = 24
_TAU_MIN = 0.05  # floor of the category spread: keeps the prior precision finite and
# stops an undetectable spread (tau^2 estimated as 0) from claiming near-zero errors
_WEAK_SD = 2.0  # prior sd of intensity lift / shift when pooling
_ALPHA_SD = 5.0  # prior sd of the baseline log rate when pooling
FALLBACK_PRIOR = (-1.0, 2.0)
"""Elasticity prior ``(mean, sd)`` where neither the operator nor the data give one: a
weakly informative prior around a typical retail elasticity."""
_ROW_BLOCK = 1024  # CPU: rows per cache block of the per-row sums
_UNPOOLED_PREC = 1e-8  # stage-one ridge on beta so a constant-price SKU stays finite


class DemandParams(NamedTuple):
    """Per-row demand parameters (arrays ``[S]``, or ``[n, S]`` for posterior draws).

    Attributes:
        alpha: log expected units per period at the reference price and zero intensity.
        elasticity: β, own-price elasticity at zero intensity.
        intensity_lift: γ, change in log demand per unit of intensity.
        intensity_shift: δ, change in elasticity per unit of intensity.
    """

    alpha: np.ndarray
    elasticity: np.ndarray
    intensity_lift: np.ndarray
    intensity_shift: np.ndarray


class _Data(NamedTuple):
    """Device arrays of one fit (padded to ``[S, T]``)."""

    X: jax.Array  # [P-1, S, T] design per row after the intercept: x, I, x*I
    y: jax.Array  # [S, T]
    mask: jax.Array  # [S, T] 1 for an observed, uncensored-or-informative cell
    hour: jax.Array  # [S, T] int hour of day, [1, T] when every row shares the period grid
    cov: jax.Array  # [C, S, T]
    cens_idx: jax.Array  # [Nc] flat indices of censored cells
    cens_y: jax.Array  # [Nc]
    prior_mean: jax.Array  # [S, P]
    prior_prec: jax.Array  # [S, P] (beta column overwritten by empirical Bayes where asked)
    eb_group: jax.Array  # [S] int group for empirical Bayes, -1 = fixed prior
    theta0: jax.Array  # [S, P] start
    shared0: jax.Array  # [24 + C] start


class _Static(NamedTuple):
    n_params: int
    n_cov: int
    profile: bool
    censored: bool
    count_kmax: int  # > 0: censored counts are integers <= this, use the finite sums
    empirical_bayes: bool
    n_groups: int
    max_iter: int
    tol: float
    row_block: int = 0  # rows per block of the row system (CPU cache blocking), 0 = all


class _SolverState(NamedTuple):
    theta: jax.Array
    shared: jax.Array
    lm: jax.Array  # [S] Levenberg-Marquardt damping per row
    loss: jax.Array  # [S] row loss at (theta, shared)
    g1: jax.Array  # [S, T] cell derivatives at (theta, shared)
    g2: jax.Array
    iteration: jax.Array
    decrement: jax.Array
    shared_decrement: jax.Array


class _FitOut(NamedTuple):
    theta: jax.Array
    shared: jax.Array
    cov_theta: jax.Array  # [S, P, P] inverse Hessian per row
    shared_cov: jax.Array  # [Q, Q]
    grad_norm: jax.Array  # [S]
    decrement: jax.Array  # [S]
    shared_decrement: jax.Array
    iterations: jax.Array
    prior_mean_beta: jax.Array  # [S]
    prior_sd_beta: jax.Array  # [S]
    loss: jax.Array


# ----------------------------------------------------------------------------- solver


def _linear_predictor(theta: jax.Array, shared: jax.Array, data: _Data, st: _Static) -> jax.Array:
    eta = sum((data.X[p - 1] * theta[:, p, None] for p in range(1, st.n_params)), theta[:, 0, None])
    if st.profile:
        eta = eta + shared[:_N_HOURS][data.hour]
    for c in range(st.n_cov):
        eta = eta + data.cov[c] * shared[_N_HOURS + c]
    return eta


def _log_survival_counts(y: jax.Array, lam: jax.Array, kmax: int) -> jax.Array:
    """log P(D ≥ y) for integer counts 1 ≤ y ≤ kmax by finite Poisson sums (exact).

    The same quantity as ``log gammainc(y, lam)``, in a fixed number of vectorised
    steps: for ``lam ≥ y`` (where P ≥ ~1/2) as ``log1p(-CDF(y - 1))``; below, as the
    upper tail ``pmf(y) Σ_j Π_{i≤j} lam/(y+i)``, whose terms fall at least like
    ``exp(-j²/2y)`` (``kmax + 16`` terms reach double precision for y ≤ 64). XLA's
    generic incomplete gamma iterates until its slowest element converges; this is
    several times cheaper on the sell-out cells of a drop.
    """
    log_lam = jnp.log(lam)

    def lower(k: int, acc: jax.Array) -> jax.Array:
        term = jnp.exp(k * log_lam - lam - gammaln(k + 1.0))
        return acc + jnp.where(k < y, term, 0.0)

    cdf = jax.lax.fori_loop(0, kmax, lower, jnp.zeros_like(lam))

    def upper(j: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        term, total = carry
        term = term * lam / (y + j)
        return term, total + term

    _, series = jax.lax.fori_loop(1, kmax + 17, upper, (jnp.ones_like(lam), jnp.ones_like(lam)))
    log_upper = y * log_lam - lam - gammaln(y + 1.0) + jnp.log(series)
    return jnp.where(
        lam >= y, jnp.log1p(-jnp.minimum(cdf, 1.0 - jnp.finfo(lam.dtype).eps)), log_upper
    )


def _log_survival(y: jax.Array, lam: jax.Array) -> jax.Array:
    """log P(D ≥ y) for D ~ Poisson(lam), y ≥ 1, stable when it underflows."""
    p = gammainc(y, lam)
    tiny = jnp.finfo(lam.dtype).tiny * 1e6
    # Leading terms of the series when P underflows (lam << y): e^-lam lam^y / y! (1 + lam/(y+1-lam)).
    series = (
        y * jnp.log(lam) - lam - gammaln(y + 1.0) + jnp.log1p(lam / jnp.maximum(y + 1.0 - lam, 1.0))
    )
    return jnp.where(p > tiny, jnp.log(jnp.maximum(p, tiny)), series)


def _cell_terms(eta: jax.Array, data: _Data, st: _Static) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Each cell's loss (less log y!) and its first and second derivative in the log rate."""
    eta = jnp.clip(eta, -30.0, 30.0)
    lam = jnp.exp(eta)
    loss = (lam - data.y * eta) * data.mask
    g1 = (lam - data.y) * data.mask
    g2 = lam * data.mask
    if st.censored:
        flat_eta = eta.reshape(-1)[data.cens_idx]
        lam_c = jnp.exp(flat_eta)
        y_c = data.cens_y
        if st.count_kmax:
            log_surv = _log_survival_counts(y_c, lam_c, st.count_kmax)
        else:
            log_surv = _log_survival(y_c, lam_c)
        log_r = y_c * flat_eta - lam_c - gammaln(y_c) - log_surv
        r = jnp.exp(jnp.minimum(log_r, 30.0))
        loss = loss.reshape(-1).at[data.cens_idx].set(-log_surv).reshape(eta.shape)
        g1 = g1.reshape(-1).at[data.cens_idx].set(-r).reshape(eta.shape)
        g2 = g2.reshape(-1).at[data.cens_idx].set(jnp.maximum(r * (r + lam_c - y_c), 0.0))
        g2 = g2.reshape(eta.shape)
    return loss, g1, g2


def _cell_loss(eta: jax.Array, data: _Data, st: _Static) -> jax.Array:
    """Each cell's negative log-likelihood, log y! included for uncensored cells."""
    loss, _, _ = _cell_terms(eta, data, st)
    full = loss + gammaln(data.y + 1.0) * data.mask
    if st.censored:
        full = full.reshape(-1).at[data.cens_idx].set(loss.reshape(-1)[data.cens_idx])
        full = full.reshape(loss.shape)
    return full


def _row_loss(theta: jax.Array, cell_loss: jax.Array, data: _Data, prec: jax.Array) -> jax.Array:
    return jnp.sum(cell_loss, axis=1) + 0.5 * jnp.sum(prec * (theta - data.prior_mean) ** 2, axis=1)


def _row_system(
    theta: jax.Array,
    g1: jax.Array,
    g2: jax.Array,
    data: _Data,
    prec: jax.Array,
    block: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Gradient and Hessian of every row's block, in blocks of ``block`` rows if > 0.

    On CPU the 14 sums per row re-read the period arrays; done block by block
    (``lax.map``) they stay in cache, 2-4x faster measured here. Accelerators get the
    whole batch at once (``block = 0``).
    """
    n_rows = theta.shape[0]
    if block <= 0 or n_rows <= block or n_rows % block:
        return _row_system_all(theta, g1, g2, data.X, data.prior_mean, prec)

    def one(i: jax.Array) -> tuple[jax.Array, jax.Array]:
        start = i * block

        def rows(a: jax.Array, axis: int = 0) -> jax.Array:
            return jax.lax.dynamic_slice_in_dim(a, start, block, axis=axis)

        return _row_system_all(
            rows(theta), rows(g1), rows(g2), rows(data.X, 1), rows(data.prior_mean), rows(prec)
        )

    grad, hess = jax.lax.map(one, jnp.arange(n_rows // block))
    return grad.reshape(n_rows, -1), hess.reshape(n_rows, *hess.shape[2:])


def _row_system_all(
    theta: jax.Array,
    g1: jax.Array,
    g2: jax.Array,
    design: jax.Array,
    prior_mean: jax.Array,
    prec: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Gradient ``[S, P]`` and Hessian ``[S, P, P]`` of every row's block.

    Written as elementwise products summed over periods (not a batched matmul of tiny
    matrices), which XLA fuses into a few passes over the ``[S, T]`` arrays.
    """
    n_p = theta.shape[1]
    # Column 0 is the intercept (all ones): its products are skipped, not multiplied by 1.
    cols: list[jax.Array | None] = [None] + [design[p] for p in range(n_p - 1)]

    def times(*factors: jax.Array | None) -> jax.Array:
        out = [f for f in factors if f is not None]
        return functools.reduce(operator.mul, out)

    grad = jnp.stack([jnp.sum(times(c, g1), axis=1) for c in cols], axis=1)
    grad = grad + prec * (theta - prior_mean)
    entries: dict[tuple[int, int], jax.Array] = {}
    for p in range(n_p):
        for q in range(p, n_p):
            h = jnp.sum(times(cols[p], cols[q], g2), axis=1)
            entries[p, q] = h + prec[:, p] if p == q else h
    hess = jnp.stack(
        [
            jnp.stack([entries[min(p, q), max(p, q)] for q in range(n_p)], axis=1)
            for p in range(n_p)
        ],
        axis=1,
    )
    return grad, hess


def _chol_solve(hess: jax.Array, rhs: jax.Array) -> jax.Array:
    """Solve ``hess x = rhs`` for every row by an unrolled Cholesky (P <= 4, [S] vectors).

    LAPACK's batched routines loop over 10^5 tiny matrices one by one on CPU; unrolled,
    each entry is one vectorised operation over all rows.
    """
    n_p = hess.shape[1]
    tiny = jnp.finfo(hess.dtype).tiny
    zero = jnp.zeros_like(hess[:, 0, 0])
    low: dict[tuple[int, int], jax.Array] = {}
    for j in range(n_p):
        d = hess[:, j, j] - sum((low[j, k] ** 2 for k in range(j)), zero)
        low[j, j] = jnp.sqrt(jnp.maximum(d, tiny))
        for i in range(j + 1, n_p):
            off = hess[:, i, j] - sum((low[i, k] * low[j, k] for k in range(j)), zero)
            low[i, j] = off / low[j, j]
    z: list[jax.Array] = []
    for i in range(n_p):
        z.append((rhs[:, i] - sum((low[i, k] * z[k] for k in range(i)), zero)) / low[i, i])
    x: list[jax.Array] = [zero] * n_p
    for i in reversed(range(n_p)):
        acc = z[i] - sum((low[k, i] * x[k] for k in range(i + 1, n_p)), zero)
        x[i] = acc / low[i, i]
    return jnp.stack(x, axis=1)


def _chol_inverse(hess: jax.Array) -> jax.Array:
    n_p = hess.shape[1]
    eye = jnp.eye(n_p, dtype=hess.dtype)
    cols = [_chol_solve(hess, jnp.broadcast_to(eye[c], hess.shape[:2])) for c in range(n_p)]
    return jnp.stack(cols, axis=2)


def _damped(hess: jax.Array, lm: jax.Array) -> jax.Array:
    """Levenberg-Marquardt damping: H + lm diag(H), plus a floor for flat directions."""
    eps = jnp.finfo(hess.dtype).eps
    diag = jnp.diagonal(hess, axis1=1, axis2=2)
    scale = jnp.max(diag, axis=1, keepdims=True)
    add = (lm[:, None] + 10.0 * eps) * diag + 10.0 * eps * scale + 1e-12
    return hess + add[:, :, None] * jnp.eye(hess.shape[1], dtype=hess.dtype)


def _shared_newton(
    shared: jax.Array,
    g1: jax.Array,
    g2: jax.Array,
    data: _Data,
    st: _Static,
    observed_hours: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Pooled Newton step on the daily profile and covariate effects."""
    q = shared.shape[0]
    grad = jnp.zeros(q, g1.dtype)
    hess = jnp.zeros((q, q), g1.dtype)
    if st.profile:
        grad = grad.at[:_N_HOURS].set(_hour_sum(g1, data))
        h_ss = _hour_sum(g2, data)
        hess = hess.at[jnp.arange(_N_HOURS), jnp.arange(_N_HOURS)].set(h_ss)
    if st.n_cov:
        cov = [data.cov[c] for c in range(st.n_cov)]
        grad = grad.at[_N_HOURS:].set(jnp.stack([jnp.sum(z * g1) for z in cov]))
        h_cc = jnp.stack([jnp.stack([jnp.sum(a * b * g2) for b in cov]) for a in cov])
        hess = hess.at[_N_HOURS:, _N_HOURS:].set(h_cc)
        if st.profile:
            h_sc = jnp.stack([_hour_sum(z * g2, data) for z in cov], axis=1)
            hess = hess.at[:_N_HOURS, _N_HOURS:].set(h_sc)
            hess = hess.at[_N_HOURS:, :_N_HOURS].set(h_sc.T)
    eps = jnp.finfo(g1.dtype).eps
    diag = jnp.diagonal(hess)
    # Unobserved hours (zero curvature) get a unit ridge so they stay at the day's average.
    ridge = jnp.where(diag > 0, 10.0 * eps * jnp.max(diag) + 1e-12, 1.0)
    damped = hess + jnp.diag(ridge)
    if st.profile:
        # The profile has mean zero over observed hours (alpha carries the level): a
        # constrained Newton step from the KKT system [[H, c], [c', 0]] [d; nu] = [g; 0].
        c = jnp.zeros(q, g1.dtype).at[:_N_HOURS].set(observed_hours.astype(g1.dtype))
        kkt = jnp.block([[damped, c[:, None]], [c[None, :], jnp.zeros((1, 1), g1.dtype)]])
        step = jnp.linalg.solve(kkt, jnp.concatenate([grad, jnp.zeros(1, g1.dtype)]))[:q]
    else:
        step = jnp.linalg.solve(damped, grad)
    step = jnp.where(jnp.isfinite(step), step, 0.0)
    return step, jnp.dot(grad, step), damped


def _observed_hours(data: _Data) -> jax.Array:
    return _hour_sum(data.mask, data) > 0


def _hour_sum(values: jax.Array, data: _Data) -> jax.Array:
    """Sum ``[S, T]`` values by hour of day; on a shared period grid, over SKUs first."""
    if data.hour.shape[0] == 1:
        return jax.ops.segment_sum(jnp.sum(values, axis=0), data.hour[0], _N_HOURS)
    return jax.ops.segment_sum(values.reshape(-1), data.hour.reshape(-1), _N_HOURS)


def _cap(step: jax.Array, limit: float, axis: int | None) -> jax.Array:
    big = jnp.max(jnp.abs(step), axis=axis, keepdims=axis is not None)
    return step * jnp.minimum(1.0, limit / jnp.maximum(big, 1e-30))


def _newton_loop(
    theta: jax.Array,
    shared: jax.Array,
    data: _Data,
    prec: jax.Array,
    tol: jax.Array,
    st: _Static,
    open_share: jax.Array | float = 0.0,
) -> _SolverState:
    """Block-coordinate Newton with per-row Levenberg-Marquardt safeguarding.

    A row's step is kept only if its loss does not rise (beyond rounding); a rejected
    row retries with ten times the damping, an accepted one relaxes it. The loss is
    convex in every block (the censored term is minus the log of a log-concave CDF), so
    this converges from any start.
    """
    dtype = theta.dtype
    eps = jnp.finfo(dtype).eps
    observed_hours = _observed_hours(data)
    shared_active = st.profile or st.n_cov > 0

    def evaluate(th: jax.Array, sh: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        cell, g1, g2 = _cell_terms(_linear_predictor(th, sh, data, st), data, st)
        return _row_loss(th, cell, data, prec), g1, g2

    def body(state: _SolverState) -> _SolverState:
        grad, hess = _row_system(state.theta, state.g1, state.g2, data, prec, st.row_block)
        step = _chol_solve(_damped(hess, state.lm), grad)
        step = _cap(jnp.where(jnp.isfinite(step), step, 0.0), 5.0, axis=1)
        # Damping shrinks the step by at most 1 + lm, so this bounds the Newton decrement.
        dec = jnp.sum(grad * step, axis=1) * (1.0 + state.lm)
        trial = state.theta - step
        loss_new, g1_new, g2_new = evaluate(trial, state.shared)
        slack = 32.0 * eps * (jnp.abs(state.loss) + 1.0)
        accept = jnp.isfinite(loss_new) & (loss_new <= state.loss + slack)
        theta = jnp.where(accept[:, None], trial, state.theta)
        lm = jnp.where(
            accept,
            jnp.where(state.lm > 1e-6, state.lm * 0.1, 0.0),
            jnp.maximum(state.lm * 10.0, 1e-3),
        )
        loss = jnp.where(accept, loss_new, state.loss)
        g1 = jnp.where(accept[:, None], g1_new, state.g1)
        g2 = jnp.where(accept[:, None], g2_new, state.g2)
        shared = state.shared
        shared_dec = jnp.zeros((), dtype)
        if shared_active:
            sstep, shared_dec, _ = _shared_newton(shared, g1, g2, data, st, observed_hours)

            def shared_move(args: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
                sh = args[0] - _cap(sstep, 3.0, axis=None)
                return (sh, *evaluate(theta, sh))

            # Once the pooled block has converged, skip its step and the second
            # evaluation: the derivatives at (theta, shared) are already in hand.
            shared, loss, g1, g2 = jax.lax.cond(
                shared_dec > tol, shared_move, lambda args: args, (shared, loss, g1, g2)
            )
        return _SolverState(theta, shared, lm, loss, g1, g2, state.iteration + 1, dec, shared_dec)

    def cond(state: _SolverState) -> jax.Array:
        # Go on while more than `open_share` of the rows (0: any row) or the shared block
        # are above tolerance.
        rows_open = jnp.mean((~(state.decrement <= tol)).astype(dtype)) > open_share
        shared_open = ~(state.shared_decrement <= tol)
        return (state.iteration < st.max_iter) & (rows_open | shared_open)

    loss0, g1_0, g2_0 = evaluate(theta, shared)
    init = _SolverState(
        theta,
        shared,
        jnp.zeros(theta.shape[:1], dtype),
        loss0,
        g1_0,
        g2_0,
        jnp.zeros((), jnp.int32),
        jnp.full(theta.shape[:1], jnp.inf, dtype),
        jnp.asarray(jnp.inf if shared_active else 0.0, dtype),
    )
    return jax.lax.while_loop(cond, body, init)


def _laplace(
    theta: jax.Array, shared: jax.Array, data: _Data, prec: jax.Array, st: _Static
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Inverse Hessians, gradient norms, Newton decrements and the loss at a solution."""
    eta = _linear_predictor(theta, shared, data, st)
    _, g1, g2 = _cell_terms(eta, data, st)
    grad, hess = _row_system(theta, g1, g2, data, prec, st.row_block)
    cov_theta = _chol_inverse(_damped(hess, jnp.zeros(theta.shape[:1], theta.dtype)))
    dec = jnp.einsum("sp,spq,sq->s", grad, cov_theta, grad)
    if st.profile or st.n_cov:
        _, sdec, shess = _shared_newton(shared, g1, g2, data, st, _observed_hours(data))
        shared_cov = jnp.linalg.inv(shess)
    else:
        sdec = jnp.zeros((), theta.dtype)
        shared_cov = jnp.zeros((shared.shape[0], shared.shape[0]), theta.dtype)
    loss = jnp.sum(_cell_loss(eta, data, st)) + 0.5 * jnp.sum(prec * (theta - data.prior_mean) ** 2)
    return cov_theta, shared_cov, jnp.linalg.norm(grad, axis=1), dec, sdec, loss


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


class _StageOut(NamedTuple):
    theta: jax.Array
    shared: jax.Array
    iterations: jax.Array
    cov_theta: jax.Array
    shared_cov: jax.Array
    grad_norm: jax.Array
    decrement: jax.Array
    shared_decrement: jax.Array
    loss: jax.Array


def _stage(
    theta: jax.Array,
    shared: jax.Array,
    data: _Data,
    prec: jax.Array,
    tol: jax.Array,
    open_share: jax.Array,
    st: _Static,
) -> _StageOut:
    """One MAP solve to tolerance plus its Laplace summary (the compiled unit).

    ``open_share`` is the share of rows allowed to stop above tolerance (0 for the final
    fit; the unpooled empirical-Bayes stage only feeds category moments and stops at 1 %).
    """
    final = _newton_loop(theta, shared, data, prec, tol, st, open_share)
    cov_theta, shared_cov, grad_norm, dec, sdec, loss = _laplace(
        final.theta, final.shared, data, prec, st
    )
    return _StageOut(
        final.theta,
        final.shared,
        final.iteration,
        cov_theta,
        shared_cov,
        grad_norm,
        dec,
        sdec,
        loss,
    )


_stage_jit = jax.jit(_stage, static_argnames=("st",))
_empirical_bayes_jit = jax.jit(_empirical_bayes, static_argnames=("st",))


def _fit_impl(data: _Data, st: _Static, *, jit: bool = True) -> _FitOut:
    """Empirical-Bayes stage (if any SKU needs it), then the pooled MAP fit.

    Both stages run the same compiled solver (same shapes; the tolerance and priors are
    arguments), so a fit compiles one program however many stages it runs.
    """
    stage = functools.partial(
        _stage_jit if jit else _stage, st=st._replace(empirical_bayes=False, n_groups=1)
    )  # the solver does not depend on the prior's source: one program for both
    eb = _empirical_bayes_jit if jit else _empirical_bayes
    theta, shared = data.theta0, data.shared0
    prec = data.prior_prec
    iterations = jnp.zeros((), jnp.int32)
    prior_mean_beta = data.prior_mean[:, 1]
    prior_sd_beta = jnp.where(prec[:, 1] > 0, 1.0 / jnp.sqrt(prec[:, 1]), jnp.inf)
    tol = jnp.asarray(st.tol, theta.dtype)
    if st.empirical_bayes:
        needs = data.eb_group >= 0
        stage_prec = prec.at[:, 1].set(jnp.where(needs, _UNPOOLED_PREC, prec[:, 1]))
        # The unpooled stage only feeds the category moments: a looser tolerance suffices.
        first = stage(theta, shared, data, stage_prec, tol * 100.0, jnp.asarray(0.01, theta.dtype))
        se1 = jnp.sqrt(jnp.maximum(first.cov_theta[:, 1, 1], 0.0))
        n_obs = jnp.sum(data.mask, axis=1)
        mu, tau = eb(first.theta[:, 1], se1, n_obs >= 3, data.eb_group, st=st)
        prior_mean_beta = jnp.where(needs, mu, prior_mean_beta)
        prior_sd_beta = jnp.where(needs, tau, prior_sd_beta)
        prec = prec.at[:, 1].set(jnp.where(needs, 1.0 / tau**2, prec[:, 1]))
        data = data._replace(prior_mean=data.prior_mean.at[:, 1].set(prior_mean_beta))
        theta, shared, iterations = first.theta, first.shared, first.iterations
    final = stage(theta, shared, data, prec, tol, jnp.asarray(0.0, theta.dtype))
    return _FitOut(
        final.theta,
        final.shared,
        final.cov_theta,
        final.shared_cov,
        final.grad_norm,
        final.decrement,
        final.shared_decrement,
        iterations + final.iterations,
        prior_mean_beta,
        prior_sd_beta,
        final.loss,
    )


# ----------------------------------------------------------------------------- input


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
    sku_codes, sku_uniques = pd.factorize(panel[sku], sort=True)
    if market:
        mkt_codes, mkt_uniques = pd.factorize(panel[market], sort=True)
        pair = sku_codes.astype(np.int64) * len(mkt_uniques) + mkt_codes
        row_pairs, row_of_obs = np.unique(pair, return_inverse=True)
    else:  # factorize already numbered the SKUs 0..n-1 in sorted order
        row_of_obs = sku_codes.astype(np.int64)
        row_pairs = np.arange(len(sku_uniques), dtype=np.int64)
    n_rows = len(row_pairs)
    per = panel[period]
    is_time = pd.api.types.is_datetime64_any_dtype(per.dtype)
    if is_time:
        per_num = ((per - per.min()) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
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

    uniq = np.unique(per_num)
    period_hours = float(np.median(np.diff(uniq))) if (is_time and len(uniq) > 1) else None
    profile = (
        daily_profile
        if daily_profile is not None
        else bool(is_time and period_hours is not None and period_hours < 24)
    )
    if profile and not is_time:
        raise InputError(
            f"daily_profile=True needs datetime periods in column {period!r}, got dtype {per.dtype}"
        )
    hour_obs = per.dt.hour.to_numpy() if (profile and is_time) else None

    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    logp = np.log(price_v)
    log_pref = np.bincount(row_of_obs, weights=logp, minlength=n_rows) / n_obs
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
    X = np.empty((3 if has_int else 1, n_pad, n_t), np_dtype)
    grid(x, X[0])
    if has_int:
        grid(inten, X[1])
        grid(x * inten, X[2])
    n_params = X.shape[0] + 1
    if hour_obs is None:  # no profile: the hour is never read
        hour_g = np.zeros((1 if dense else n_pad, n_t), np.int32)
    else:
        hour_g = grid(hour_obs.astype(np_dtype))[:n_rows].astype(np.int32)
        if dense and np.all(hour_g == hour_g[:1]):
            hour_g = hour_g[:1]  # one period grid for every row: sum over rows first
        else:
            hour_g = np.pad(hour_g, [(0, n_pad - n_rows), (0, 0)])
    n_cov = len(covariates)
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
    prior_mean = np.zeros((n_rows, n_params))
    prior_prec = np.zeros((n_rows, n_params))
    eb_group = np.full(n_rows, -1, dtype=np.int32)
    use_prior = pooling or priors is not None
    if use_prior:
        overall = max(qty[informative].mean() if informative.any() else 0.0, 1e-3)
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
    empirical_bayes = bool((eb_group >= 0).any())

    theta0 = np.zeros((n_rows, n_params))
    mean_y = np.bincount(row_of_obs, weights=qty, minlength=n_rows) / n_obs
    theta0[:, 0] = np.log(mean_y + 0.1)
    shared0 = np.zeros(_N_HOURS + n_cov)
    if init is not None:
        theta0, shared0 = _warm_start(
            init, keys, log_pref, theta0, shared0, n_params, covariates, profile
        )

    tol = 1e-12 if dtype == jnp.float64 else 1e-5
    static = _Static(
        n_params=n_params,
        n_cov=n_cov,
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
    n_params: int,
    covariates: tuple[str, ...],
    profile: bool,
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
        if n_params == 4:
            theta[r, 2] = g + d * shift
            theta[r, 3] = d
    shared = shared0.copy()
    if profile and init.daily_profile is not None:
        shared[:_N_HOURS] = init.daily_profile
    for c, name in enumerate(covariates):
        if name in init.covariate_effects:
            shared[_N_HOURS + c] = init.covariate_effects[name][0]
    return theta, shared


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ElasticityFit:
    """Result of :func:`fit_elasticity`: frozen, JSON/npz serialisable, no pickle.

    Attributes:
        keys: ``(sku, market)`` per row in table order (market ``None`` without markets).
        params: MAP :class:`DemandParams`, arrays ``[S]``.
        param_cov: ``[S, P, P]`` Laplace covariance of each row's ``[α, β(, γ, δ)]``.
        log_pref: ``[S]`` log reference price (geometric mean price of the row).
        daily_profile: ``[24]`` shared hour-of-day log effect, or ``None``.
        covariate_effects: name -> (estimate, Laplace se) of shared covariate effects.
        n_obs, n_censored: ``[S]`` observed and sold-out periods per row.
        converged: ``[S]`` per-row convergence (Newton decrement under tolerance).
        grad_norm: ``[S]`` gradient norm of each row's block at the solution.
        iterations: Newton iterations run (both stages for empirical Bayes).
        prior_mean, prior_sd: ``[S]`` elasticity prior used (``inf`` sd: none).
        categories: ``[S]`` category per row (``None`` when not given).
        period_hours: period length in hours for datetime periods, else ``None``.
        dtype: ``"float32"`` or ``"float64"``.
        loss: negative log posterior at the solution.
        log_price_range: ``[S, 2]`` lowest and highest log price each row was observed
            at (``None`` for fits saved before it was recorded); the prediction methods'
            ``extrapolation=`` bound reads it.
    """

    keys: list[tuple[Any, Any]]
    params: DemandParams
    param_cov: np.ndarray
    log_pref: np.ndarray
    daily_profile: np.ndarray | None
    covariate_effects: dict[str, tuple[float, float]]
    n_obs: np.ndarray
    n_censored: np.ndarray
    converged_rows: np.ndarray
    grad_norm: np.ndarray
    iterations: int
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    categories: np.ndarray
    has_intensity: bool
    period_hours: float | None
    dtype: str
    loss: float
    shared_converged: bool = True
    log_price_range: np.ndarray | None = None
    _index: dict[tuple[Any, Any], int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({k: i for i, k in enumerate(self.keys)})

    # ------------------------------------------------------------------ summaries

    @property
    def converged(self) -> bool:
        """True when every row and the shared block converged."""
        return bool(np.all(self.converged_rows)) and self.shared_converged

    @property
    def elasticity_se(self) -> np.ndarray:
        """``[S]`` Laplace standard error of each row's elasticity."""
        return np.sqrt(np.maximum(self.param_cov[:, 1, 1], 0.0))

    @property
    def table(self) -> pd.DataFrame:
        """One row per SKU(-market): elasticity, its se, intensity terms, counts, flags."""
        sku, market = zip(*self.keys, strict=True) if self.keys else ((), ())
        out = pd.DataFrame({"sku": list(sku)})
        if any(m is not None for m in market):
            out["market"] = list(market)
        p = self.params
        out["elasticity"] = p.elasticity
        out["elasticity_se"] = self.elasticity_se
        out["intensity_lift"] = p.intensity_lift
        out["intensity_shift"] = p.intensity_shift
        if self.has_intensity:
            out["intensity_lift_se"] = np.sqrt(np.maximum(self.param_cov[:, 2, 2], 0.0))
            out["intensity_shift_se"] = np.sqrt(np.maximum(self.param_cov[:, 3, 3], 0.0))
        out["baseline"] = np.exp(p.alpha)
        out["ref_price"] = np.exp(self.log_pref)
        out["n_obs"] = self.n_obs
        out["n_censored"] = self.n_censored
        out["prior_mean"] = self.prior_mean
        out["prior_sd"] = self.prior_sd
        out["category"] = self.categories
        out["converged"] = self.converged_rows
        out["grad_norm"] = self.grad_norm
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: fit diagnostics, shared effects and the per-row table."""
        table = self.table.replace([np.inf, -np.inf], None)
        return {
            "n_rows": len(self.keys),
            "converged": self.converged,
            "n_converged": int(np.sum(self.converged_rows)),
            "iterations": int(self.iterations),
            "max_grad_norm": float(np.max(self.grad_norm)) if len(self.keys) else 0.0,
            "loss": float(self.loss),
            "dtype": self.dtype,
            "period_hours": self.period_hours,
            "daily_profile": None if self.daily_profile is None else self.daily_profile.tolist(),
            "covariate_effects": {k: list(v) for k, v in self.covariate_effects.items()},
            "table": json.loads(table.to_json(orient="records")),
        }

    def __str__(self) -> str:
        t = self.table
        head = (
            f"ElasticityFit: {len(self.keys)} rows, "
            f"{'converged' if self.converged else 'NOT converged'} "
            f"({int(np.sum(self.converged_rows))}/{len(self.keys)} rows) in {self.iterations} "
            f"iterations, {self.dtype}, max |grad| {float(np.max(self.grad_norm)) if len(t) else 0:.2e}"
        )
        lines = [head]
        if len(t):
            e = t["elasticity"]
            lines.append(
                f"  elasticity: median {e.median():.3f}, 10%-90% [{e.quantile(0.1):.3f}, "
                f"{e.quantile(0.9):.3f}], median se {t['elasticity_se'].median():.3f}"
            )
        for name, (est, se) in self.covariate_effects.items():
            lines.append(f"  {name}: {est:+.3f} (se {se:.3f})")
        if self.daily_profile is not None:
            peak = int(np.argmax(self.daily_profile))
            lines.append(f"  daily profile: peak hour {peak:02d} ({self.daily_profile[peak]:+.2f})")
        cols = [
            c
            for c in ("sku", "market", "elasticity", "elasticity_se", "n_obs", "converged")
            if c in t
        ]
        lines.append(t[cols].head(8).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if len(t) > 8:
            lines.append(f"  ... {len(t) - 8} more rows")
        return "\n".join(lines)

    # ------------------------------------------------------------------ prediction

    def _row(self, sku: Any, market: Any) -> int:
        try:
            return self._index[(sku, market)]
        except KeyError:
            known = [k for k in self.keys[:5]]
            raise InputError(
                f"no fitted row for sku={sku!r} market={market!r}; fitted keys look like {known}"
            ) from None

    def _profile_at(self, hours: np.ndarray | None) -> np.ndarray:
        if self.daily_profile is None:
            return np.zeros(() if hours is None else np.shape(hours))
        if hours is None:
            # The average hour: expected units per period averaged over the day.
            return np.log(np.mean(np.exp(self.daily_profile)))
        h = np.asarray(hours)
        if not np.issubdtype(h.dtype, np.integer) or np.any((h < 0) | (h > 23)):
            raise InputError(f"hours must be integers in [0, 23], got {h!r}")
        return self.daily_profile[h]

    def _log_relative_price(
        self, log_price: np.ndarray, rows: np.ndarray | slice, extrapolation: float | None
    ) -> np.ndarray:
        """``x = log(p / p_ref)``, bounded to the observed range widened by ``extrapolation``.

        ``log_price`` broadcasts against ``rows`` on its trailing axis (``[K, S]`` with all
        rows, any shape for one row index). With ``lo, hi`` a row's observed ``x`` range and
        ``w = extrapolation``, ``x`` is clamped to ``[lo − w (hi − lo), hi + w (hi − lo)]``.
        """
        x = log_price - self.log_pref[rows]
        if extrapolation is None:
            return x
        if not (math.isfinite(extrapolation) and extrapolation >= 0):
            raise InputError(f"extrapolation must be a finite number >= 0, got {extrapolation!r}")
        if self.log_price_range is None:
            raise InputError(
                "extrapolation= needs the rows' observed price ranges, which this fit does not "
                "record (saved by an older version); refit it"
            )
        lo = self.log_price_range[rows, 0] - self.log_pref[rows]
        hi = self.log_price_range[rows, 1] - self.log_pref[rows]
        span = hi - lo
        return np.clip(x, lo - extrapolation * span, hi + extrapolation * span)

    def _covariate_term(
        self, covariates: Mapping[str, Any] | None, shape: tuple[int, ...], where: str
    ) -> np.ndarray | float:
        """``θ'z`` broadcast to ``shape``: 0 when ``covariates`` is ``None``.

        A mapping must name every fitted covariate (an omitted one would silently be
        predicted at 0, e.g. a promotion taken as off) and no other.
        """
        if covariates is None:
            return 0.0
        fitted = list(self.covariate_effects)
        unknown = [name for name in covariates if name not in self.covariate_effects]
        if unknown:
            raise InputError(f"{where}: unknown covariate(s) {unknown}; fitted covariates {fitted}")
        missing = [name for name in fitted if name not in covariates]
        if missing:
            raise InputError(
                f"{where}: covariate(s) {missing} missing; pass every fitted covariate "
                f"{fitted}, or covariates=None to predict with all of them at 0"
            )
        z = np.zeros(shape)
        for name in fitted:
            value = np.asarray(covariates[name], dtype=float)
            try:
                value = np.broadcast_to(value, shape)
            except ValueError:
                raise InputError(
                    f"{where}: covariates[{name!r}] has shape {value.shape}, which does not "
                    f"broadcast to {shape}"
                ) from None
            if not np.all(np.isfinite(value)):
                raise InputError(f"{where}: covariates[{name!r}] must be finite")
            z = z + self.covariate_effects[name][0] * value
        return z

    def expected_demand(
        self,
        sku: Any,
        price: float | Sequence[float] | np.ndarray,
        intensity: float = 0.0,
        market: Any = None,
        period: Any = None,
        covariates: Mapping[str, float | Sequence[float] | np.ndarray] | None = None,
        *,
        extrapolation: float | None = None,
    ) -> float | np.ndarray:
        """Expected units per period for one SKU(-market) at ``price``.

        Args:
            sku, market: the row (``market=None`` for fits without markets).
            price: scalar or array of prices (> 0).
            intensity: micro-event intensity I.
            period: a timestamp (its hour picks the daily-profile value) or an hour
                0-23; ``None`` averages over the day.
            covariates: ``{name: value}`` for every fitted covariate; a value is a
                scalar or an array broadcastable with ``price`` (one value per price).
                ``None`` predicts with every covariate at 0 (e.g. no promotion); a
                mapping that omits a fitted covariate, or names an unknown one, is an
                :class:`InputError`.
            extrapolation: as :meth:`demand_rates` (``None``: the curve is carried to any
                price).

        Returns:
            λ = exp(α + s(h) + γ I + (β + δ I) log(p/p_ref) + θ'z), a float for a scalar
            price and scalar covariates.

        Raises:
            InputError: an unknown row, a non-positive price, or covariates as above.

        Example:
            >>> fit.expected_demand("sku-1", [9.0, 10.0])  # doctest: +SKIP
            array([4.1, 3.5])
            >>> fit.expected_demand("sku-1", 10.0, covariates={"promo": [0, 1]})  # doctest: +SKIP
            array([3.5, 4.9])
        """
        i = self._row(sku, market)
        p = np.asarray(price, dtype=float)
        if np.any(~np.isfinite(p) | (p <= 0)):
            raise InputError(f"price must be finite and > 0, got {price!r}")
        if period is None:
            prof = self._profile_at(None)
        else:
            hour = period if isinstance(period, int | np.integer) else pd.Timestamp(period).hour
            prof = self._profile_at(np.asarray(int(hour)))
        try:
            shape = np.broadcast_shapes(
                p.shape, *(np.shape(v) for v in (covariates or {}).values())
            )
        except ValueError:
            shapes = {k: np.shape(v) for k, v in (covariates or {}).items()}
            raise InputError(
                f"expected_demand: covariate shapes {shapes} do not broadcast with the "
                f"price's shape {p.shape}"
            ) from None
        z = self._covariate_term(covariates, shape, "expected_demand")
        pr = self.params
        x = self._log_relative_price(np.log(p), i, extrapolation)
        eta = pr.alpha[i] + prof + pr.intensity_lift[i] * intensity
        eta = eta + (pr.elasticity[i] + pr.intensity_shift[i] * intensity) * x + z
        out = np.exp(eta)
        return float(out) if out.ndim == 0 else out

    def demand_rates(
        self,
        prices: np.ndarray,
        intensity: np.ndarray | None = None,
        hours: np.ndarray | None = None,
        *,
        params: DemandParams | None = None,
        covariates: Mapping[str, np.ndarray] | None = None,
        extrapolation: float | None = None,
    ) -> np.ndarray:
        """Expected units per period for every row, period and candidate price.

        Args:
            prices: ``[S, K]`` candidate prices per row of :attr:`table` (> 0).
            intensity: ``[S, T]`` forecast intensity, or ``None`` (zero).
            hours: ``[T]`` hour of day of each period for the daily profile, or ``None``
                (the day's average).
            params: parameters to use instead of the MAP (e.g. one draw of
                :meth:`sample_params`, arrays ``[S]``; or ``[n, S]`` for ``n`` draws).
            covariates: ``{name: array}`` for every fitted covariate, each broadcastable
                to ``[S, T]`` (a scalar, ``[S, 1]`` per row, ``[T]`` per period or
                ``[S, T]`` per cell), applied with the fitted shared effects ``θ``.
                **``None`` predicts with every covariate at 0** (no promotion, no
                display, ...): the rates of a fit with covariates then describe the
                periods where all of them are off. A mapping that omits a fitted
                covariate or names an unknown one is an :class:`InputError`.
            extrapolation: ``None`` (the default) carries the fitted log-linear curve to
                any price. A number ``w >= 0`` bounds the curve beyond the data: with
                ``lo, hi`` the lowest and highest ``x = log(p / p_ref)`` the row was fitted
                on, ``x`` is clamped to ``[lo − w (hi − lo), hi + w (hi − lo)]``, so a price
                further out is predicted the demand of the nearest bound (flat beyond it).
                ``w = 0.5`` lets the curve run half the observed range past each end; a
                row fitted at one price (``hi = lo``) is flat at its level. An elasticity
                of -11.5 fitted on -13 %..+5 % then predicts at -82 % what it predicts at
                -21 % (about 11x the level at ``p_ref``) instead of about 10⁸ times it.

        Returns:
            ``[S, T, K]`` (``[n, S, T, K]`` for ``[n, S]`` params) rates, where
            ``T`` is ``intensity.shape[1]``, else ``len(hours)``, else the covariates'
            period axis, else 1.

        Raises:
            InputError: on shapes that do not match the fit, non-positive prices, or
                covariates as above.

        Example:
            >>> on = fit.demand_rates(prices, covariates={"promo": np.ones((S, 24))})  # doctest: +SKIP
        """
        s = len(self.keys)
        prices = np.asarray(prices, dtype=float)
        if prices.ndim != 2 or prices.shape[0] != s:
            raise InputError(f"prices must have shape [S={s}, K], got {prices.shape}")
        if np.any(~np.isfinite(prices) | (prices <= 0)):
            raise InputError("prices must be finite and > 0")
        if intensity is not None:
            inten = np.asarray(intensity, dtype=float)
            if inten.ndim != 2 or inten.shape[0] != s:
                raise InputError(f"intensity must have shape [S={s}, T], got {inten.shape}")
            n_t = inten.shape[1]
        else:
            if hours is not None:
                n_t = len(hours)
            else:  # the covariates' period axis, when they have one
                lengths = {np.shape(v)[-1] for v in (covariates or {}).values() if np.ndim(v) >= 1}
                lengths.discard(1)
                n_t = lengths.pop() if len(lengths) == 1 else 1
            inten = np.zeros((s, n_t))
        if hours is not None and len(hours) != n_t:
            raise InputError(f"hours must have length T={n_t}, got {len(hours)}")
        prof = np.broadcast_to(
            self._profile_at(None if hours is None else np.asarray(hours)), (n_t,)
        )
        z = self._covariate_term(covariates, (s, n_t), "demand_rates")
        p = self.params if params is None else params
        x = self._log_relative_price(np.log(prices).T, slice(None), extrapolation).T  # [S, K]
        a, b = np.asarray(p.alpha)[..., None], np.asarray(p.elasticity)[..., None]
        g, d = np.asarray(p.intensity_lift)[..., None], np.asarray(p.intensity_shift)[..., None]
        eta = a + prof + g * inten + z  # [..., S, T]
        slope = b + d * inten  # [..., S, T]
        return np.exp(eta[..., None] + slope[..., None] * x[:, None, :])

    def posterior_rates(
        self,
        prices: np.ndarray,
        intensity: np.ndarray | None = None,
        hours: np.ndarray | None = None,
        *,
        params: DemandParams | None = None,
        max_log_var: float = 1.0,
        covariates: Mapping[str, np.ndarray] | None = None,
        extrapolation: float | None = None,
    ) -> np.ndarray:
        """Expected units ``[S, T, K]`` averaged over the Laplace posterior.

        With ``log λ = a'θ`` linear in the row's parameters ``θ ~ N(θ̂, Σ)``
        (``a = [1, x, I, I x]``, ``x = log(p / p_ref)``),

        .. math:: E[λ] = \\exp(a'\\hat θ + \\tfrac12 a'Σa)

        the demand the expected revenue of a price is made of; the plug-in
        :meth:`demand_rates` understates it by the spread of what the data allow, most
        for prices far from the data (larger ``x``). The log variance is capped at
        ``max_log_var`` so a weakly identified row cannot inflate its demand without bound.

        Args:
            prices, intensity, hours, params, covariates, extrapolation: as
                :meth:`demand_rates` (with ``extrapolation``, the variance is taken at the
                clamped ``x`` too)
                (``params`` ``[S]``; ``covariates=None`` predicts with every covariate at
                0). The shared effects ``θ`` enter at their estimates: their uncertainty,
                pooled over every row, is not added to a row's variance.
            max_log_var: cap on ``a'Σa``.

        Returns:
            ``[S, T, K]`` rates.
        """
        mean = np.asarray(
            self.demand_rates(
                prices,
                intensity=intensity,
                hours=hours,
                params=params,
                covariates=covariates,
                extrapolation=extrapolation,
            )
        )
        log_p = np.log(np.asarray(prices, dtype=float))
        x = self._log_relative_price(log_p.T, slice(None), extrapolation).T[:, None, :]
        cov = np.nan_to_num(self.param_cov, nan=0.0, posinf=0.0, neginf=0.0)
        if self.has_intensity and intensity is not None and cov.shape[1] >= 4:
            i = np.asarray(intensity, dtype=float)[:, :, None]  # [S, T, 1]
            a = (np.ones_like(x + i), x + 0 * i, i + 0 * x, i * x)
            var = sum(cov[:, j, k, None, None] * a[j] * a[k] for j in range(4) for k in range(4))
        else:
            var = cov[:, 0, 0, None, None] + 2 * cov[:, 0, 1, None, None] * x
            var = var + cov[:, 1, 1, None, None] * x**2
        return mean * np.exp(0.5 * np.clip(var, 0.0, max_log_var))

    def sample_params(self, n: int, *, key: jax.Array) -> DemandParams:
        """``n`` draws of every row's parameters from the Laplace posterior N(MAP, H⁻¹).

        Args:
            n: number of draws.
            key: a ``jax.random`` PRNG key (split by the caller; never global).

        Returns:
            :class:`DemandParams` with arrays ``[n, S]``.
        """
        if int(n) < 1:
            raise InputError(f"n must be >= 1, got {n}")
        mean = np.stack(
            [self.params.alpha, self.params.elasticity]
            + (
                [self.params.intensity_lift, self.params.intensity_shift]
                if self.has_intensity
                else []
            ),
            axis=1,
        )
        pdim = mean.shape[1]
        cov = self.param_cov[:, :pdim, :pdim]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2)) + 1e-12 * np.eye(pdim)
        chol = np.linalg.cholesky(np.where(np.isfinite(cov), cov, 0.0) + 0.0)
        z = np.asarray(jax.random.normal(key, (int(n), len(self.keys), pdim)), dtype=float)
        draws = mean[None] + np.einsum("spq,nsq->nsp", chol, z)
        zeros = np.zeros(draws.shape[:2])
        return DemandParams(
            alpha=draws[..., 0],
            elasticity=draws[..., 1],
            intensity_lift=draws[..., 2] if self.has_intensity else zeros,
            intensity_shift=draws[..., 3] if self.has_intensity else zeros,
        )

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the fit as ``fit.npz`` (arrays) and ``fit.json`` (metadata) in ``path``.

        No pickle: keys and labels are JSON; arrays are plain numeric npz members.

        Returns:
            The directory written.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / "fit.npz",
            alpha=self.params.alpha,
            elasticity=self.params.elasticity,
            intensity_lift=self.params.intensity_lift,
            intensity_shift=self.params.intensity_shift,
            param_cov=self.param_cov,
            log_pref=self.log_pref,
            daily_profile=np.zeros(0) if self.daily_profile is None else self.daily_profile,
            n_obs=self.n_obs,
            n_censored=self.n_censored,
            converged_rows=self.converged_rows,
            grad_norm=self.grad_norm,
            prior_mean=self.prior_mean,
            prior_sd=self.prior_sd,
            **({} if self.log_price_range is None else {"log_price_range": self.log_price_range}),
        )
        meta = {
            "format_version": _FORMAT_VERSION,
            "keys": [[_jsonable(s), _jsonable(m)] for s, m in self.keys],
            "categories": [_jsonable(c) for c in self.categories.tolist()],
            "covariate_effects": {k: list(v) for k, v in self.covariate_effects.items()},
            "has_profile": self.daily_profile is not None,
            "has_intensity": self.has_intensity,
            "iterations": int(self.iterations),
            "period_hours": self.period_hours,
            "dtype": self.dtype,
            "loss": float(self.loss),
            "shared_converged": bool(self.shared_converged),
        }
        (folder / "fit.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> ElasticityFit:
        """Read a fit written by :meth:`save`.

        Raises:
            InputError: if the files are missing or of an unknown format version.
        """
        folder = Path(path)
        try:
            meta = json.loads((folder / "fit.json").read_text())
            arrays = np.load(folder / "fit.npz", allow_pickle=False)
        except FileNotFoundError as exc:
            raise InputError(f"no saved fit in {folder}: expected fit.json and fit.npz") from exc
        if meta.get("format_version") != _FORMAT_VERSION:
            raise InputError(
                f"{folder / 'fit.json'}: format_version {meta.get('format_version')!r}, "
                f"this version reads {_FORMAT_VERSION}"
            )
        return cls(
            keys=[(s, m) for s, m in meta["keys"]],
            params=DemandParams(
                arrays["alpha"],
                arrays["elasticity"],
                arrays["intensity_lift"],
                arrays["intensity_shift"],
            ),
            param_cov=arrays["param_cov"],
            log_pref=arrays["log_pref"],
            daily_profile=arrays["daily_profile"] if meta["has_profile"] else None,
            covariate_effects={
                k: (float(v[0]), float(v[1])) for k, v in meta["covariate_effects"].items()
            },
            n_obs=arrays["n_obs"],
            n_censored=arrays["n_censored"],
            converged_rows=arrays["converged_rows"],
            grad_norm=arrays["grad_norm"],
            iterations=int(meta["iterations"]),
            prior_mean=arrays["prior_mean"],
            prior_sd=arrays["prior_sd"],
            categories=np.array(meta["categories"], dtype=object),
            has_intensity=bool(meta["has_intensity"]),
            period_hours=meta["period_hours"],
            dtype=meta["dtype"],
            loss=float(meta["loss"]),
            shared_converged=bool(meta["shared_converged"]),
            log_price_range=arrays.get("log_price_range"),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# ----------------------------------------------------------------------------- entry point


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

    Returns:
        :class:`ElasticityFit`.

    Raises:
        InputError: a missing column, bad values (naming the column and rows),
            duplicate (key, period) rows, or inconsistent arguments.

    Example:
        >>> fit = fit_elasticity(panel, covariates=["promo"], sold_out="sold_out")  # doctest: +SKIP
        >>> fit.table[["sku", "elasticity", "elasticity_se"]]  # doctest: +SKIP
    """
    if not pooling and priors is not None:
        raise InputError(
            "pooling=False fits without priors; got priors as well, pass one or the other"
        )
    if not (isinstance(max_iter, int) and 1 <= max_iter <= 10_000):
        raise InputError(f"max_iter must be an integer in [1, 10000], got {max_iter!r}")
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
    )
    if jit:
        out = _fit_impl(prep.data, prep.static)
    else:
        with jax.disable_jit():
            out = _fit_impl(prep.data, prep.static, jit=False)
    return _result(prep, jax.device_get(out), tuple(covariates), intensity is not None)


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
    )
    theta = np.asarray(out.theta, dtype=float)
    zeros = np.zeros(n)
    st = prep.static
    shared = np.asarray(out.shared, dtype=float)
    shared_cov = np.asarray(out.shared_cov, dtype=float)
    cov_effects = {
        name: (
            float(shared[_N_HOURS + c]),
            float(math.sqrt(max(shared_cov[_N_HOURS + c, _N_HOURS + c], 0.0))),
        )
        for c, name in enumerate(covariates)
    }
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
    )
