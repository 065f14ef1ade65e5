"""The demand model's likelihood: parameters, design arrays and each cell's loss.

For row ``i`` (a SKU, or a SKU in a market) in period ``t`` with price ``p``, intensity
``I`` and covariates ``z``:

.. math::

    \\log \\lambda_{it} = \\alpha_i + s(h_t) + \\gamma_i I_{it}
        + (\\beta_i + \\delta_i I_{it})\\, x_{it} + \\theta' z_{it},
    \\qquad x_{it} = \\log(p_{it} / p^{\\mathrm{ref}}_i),
    \\qquad y_{it} \\sim \\mathrm{Poisson}(\\lambda_{it})

Negative log-likelihood per observed cell:

- uncensored: ``λ − y log λ + log y!``
- sold out (censored): ``−log P(D ≥ y) = −log P(y, λ)`` with ``P`` the regularised lower
  incomplete gamma function (``jax.scipy.special.gammainc``); for integer sell-out counts
  up to 64 the same quantity is computed by exact finite Poisson sums, which are several
  times cheaper than XLA's generic series (the tests check the two agree).

For a censored cell with ``r = exp(y η − λ − log Γ(y) − log P(y, λ))`` the derivatives in
the log rate ``η`` are ``∂ℓ/∂η = −r`` and ``∂²ℓ/∂η² = r (r + λ − y)``.

References:
    McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammainc, gammaln

N_HOURS = 24
"""Length of the shared hour-of-day profile ``s(h)``."""


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
    n_row_cov: int = 0  # covariates with an effect per row: the last columns of the design


def _linear_predictor(theta: jax.Array, shared: jax.Array, data: _Data, st: _Static) -> jax.Array:
    eta = sum((data.X[p - 1] * theta[:, p, None] for p in range(1, st.n_params)), theta[:, 0, None])
    if st.profile:
        eta = eta + shared[:N_HOURS][data.hour]
    for c in range(st.n_cov):
        eta = eta + data.cov[c] * shared[N_HOURS + c]
    return eta


def _log_survival_counts(y: jax.Array, lam: jax.Array, kmax: int) -> jax.Array:
    """log P(D ≥ y) for integer counts 1 ≤ y ≤ kmax by finite Poisson sums (exact).

    The same quantity as ``log gammainc(y, lam)``, in a fixed number of vectorised
    steps, each cell summing only the series its branch needs:

    - ``lam ≥ y`` (where P ≥ ~1/2): ``log1p(-CDF(y - 1))``, the CDF summed down from its
      largest term, ``pmf(y - 1) Σ_j Π_{i<j} (y - 1 - i)/lam`` (``y`` terms);
    - below: the upper tail ``pmf(y) Σ_j Π_{i≤j} lam/(y + i)``, whose terms fall at least
      like ``exp(-j²/2y)`` (``kmax + 16`` terms reach double precision for y ≤ 64).

    Both are one running product per cell (a multiply and a divide per step, no ``exp``
    per term) started from one ``exp`` of the log pmf. XLA's generic incomplete gamma
    iterates until its slowest element converges; this is several times cheaper on the
    sell-out cells of a drop.
    """
    log_lam = jnp.log(lam)
    log_pmf = y * log_lam - lam - gammaln(y + 1.0)  # log P(D = y)
    below = lam >= y  # the CDF branch

    def step(j: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        term, total = carry
        ratio = jnp.where(below, jnp.maximum(y - j, 0.0) / lam, lam / (y + j))
        term = term * ratio
        return term, total + term

    _, series = jax.lax.fori_loop(1, kmax + 17, step, (jnp.ones_like(lam), jnp.ones_like(lam)))
    # pmf(y - 1) = pmf(y) · y / lam
    cdf = jnp.exp(log_pmf + jnp.log(y) - log_lam) * series
    log_upper = log_pmf + jnp.log(series)
    return jnp.where(below, jnp.log1p(-jnp.minimum(cdf, 1.0 - jnp.finfo(lam.dtype).eps)), log_upper)


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
