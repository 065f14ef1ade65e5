"""Statistics shared by the detectors: quasi-Poisson tails, q-values, hour-of-day profiles."""

from __future__ import annotations

import numpy as np
from scipy import special

from pricing.signals.common import SignalPanel


def _gamma_tail(count: np.ndarray, mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """Quasi-Poisson upper tail ``P(Y ≥ count)`` for ``Var Y = dispersion · mean``.

    The counts are scaled by the dispersion and the Poisson tail is read off the
    regularised incomplete gamma function, ``P(Poisson(μ) ≥ k) = P(k, μ)``, which
    interpolates between whole counts (McCullagh & Nelder 1989, §4.5).
    """
    a = np.asarray(count, float) / dispersion
    mu = np.asarray(mean, float) / dispersion
    out = np.where(a > mu, special.gammainc(np.maximum(a, 1e-12), np.maximum(mu, 1e-12)), 1.0)
    return np.asarray(out, float)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (1995), same order."""
    p = np.asarray(p, float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(q, 1.0)
    return out


def _local_profile(
    x: np.ndarray,
    panel: SignalPanel,
    floor: np.ndarray,
    weekdays: np.ndarray | None = None,
    *,
    seen: np.ndarray,
) -> np.ndarray:
    """``[M, 24]`` mean level by local hour of a 3-hour centred average of ``x``, over
    the days whose local weekday is in ``weekdays`` (all days by default) and the
    hours ``seen``, floored per market.

    A mean, not a median: with baskets and busy days the counts are right-skewed, and
    a median of them sits well below the mean, which makes ordinary hours look like
    spikes in small markets.
    """
    M, T = x.shape
    smooth = x.copy()
    smooth[:, 1:-1] = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3.0
    use = seen.copy() if weekdays is None else seen & np.isin(panel.local_weekday, weekdays)
    cell = (np.arange(M)[:, None] * 24 + panel.local_hour)[use]
    sums = np.bincount(cell, weights=smooth[use], minlength=M * 24)
    counts = np.bincount(cell, minlength=M * 24)
    prof = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).reshape(M, 24)
    return np.maximum(prof, floor[:, None])


def _robust_profile(
    x: np.ndarray, panel: SignalPanel, floor: np.ndarray, *, seen: np.ndarray
) -> np.ndarray:
    """``[M, 24]`` level by local hour that a spike on up to three weekdays does not
    move: the median over the 7 local weekdays of each weekday's mean (of a 3-hour
    centred average), floored per market.

    It feeds the shared factor only: a large market's weekend spike must not raise
    its baseline on every day, which would make every weekday look like a national
    dip and every other market's weekdays like spikes.
    """
    M, T = x.shape
    smooth = x.copy()
    smooth[:, 1:-1] = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3.0
    cell = ((np.arange(M)[:, None] * 7 + panel.local_weekday) * 24 + panel.local_hour)[seen]
    sums = np.bincount(cell, weights=smooth[seen], minlength=M * 168)
    counts = np.bincount(cell, minlength=M * 168)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(M, 7, 24)
    filled = np.where(np.isnan(means).all(1, keepdims=True), 0.0, means)
    with np.errstate(all="ignore"):
        prof = np.nan_to_num(np.nanmedian(filled, axis=1))
    return np.maximum(prof, floor[:, None])


def _extra_variance(r: np.ndarray, e: np.ndarray, v0: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per-market ``σ²`` of ``Var(r) = v0 + σ² e²`` (rows are markets).

    The moment estimate ``Σ ((r − e)² − v0) / Σ e²`` over the cells ``ok``, with the
    squared residuals capped at their 99th percentile (the few cells a spike lifts
    must not make the noise), averaged with the estimate pooled over markets and
    floored at 0.005. Moments, not medians: claims bursts, TV spots and baskets give
    heavy tails, which a median-based estimate would miss.
    """

    def solve(rr: np.ndarray, ee: np.ndarray, vv: np.ndarray) -> float:
        if rr.size < 4 or not (ee > 0).any():
            return 0.05
        r2 = (rr - ee) ** 2
        r2 = np.minimum(r2, np.quantile(r2, 0.99))
        return float(max(0.0, (r2 - vv).sum() / (ee * ee).sum()))

    pooled = solve(r[ok], e[ok], v0[ok])
    own = np.array([solve(r[m][ok[m]], e[m][ok[m]], v0[m][ok[m]]) for m in range(r.shape[0])])
    return np.maximum(0.5 * (own + pooled), 0.005)
