"""``regional_spike``: one market spikes again and again at the same local hours and days."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.signals.common import (
    _DAY_SETS,
    _HOUR,
    Detection,
    Evidence,
    NotJudged,
    SignalPanel,
    SignalParams,
)
from pricing.signals.panel import _by_market
from pricing.signals.stats import _bh, _extra_variance, _gamma_tail, _local_profile, _robust_profile

__all__ = ["detect_regional_spikes"]


def detect_regional_spikes(
    panel: SignalPanel, params: SignalParams = SignalParams()
) -> list[Detection]:
    """Markets that spike again and again on their own, at the same local hours.

    See :func:`_regional_spikes` for the statistics; this returns its detections.
    """
    return _regional_spikes(panel, params)[0]


def _regional_spikes(
    panel: SignalPanel, params: SignalParams
) -> tuple[list[Detection], list[NotJudged]]:
    """Markets whose units exceed what the lift every market shares predicts, on the
    same local hours of the same kind of day, week after week (Kulldorff 1997).

    Per market m and hour t (units ``R_mt`` over all SKUs, local hour ``h``)::

        F_t   = (Σ_m R_mt + κ) / (Σ_m b_mh(t) + κ)        shared lift, median 1
        f_mt  = the same without m and without the other market furthest above
                its expectation at t                        (leave-out factor)
        E_mt  = p_mh(t) · f_mt                              expectation

    ``b`` is a spike-proof level by local hour (:func:`_robust_profile`), ``p`` the
    mean of ``R / f`` by local hour over the days *outside* the pattern tested
    (:func:`_local_profile`), κ = ``common_pseudo_units``. A weekend, a holiday, a
    TV spot or a claims burst lifts every market at once, so it enters f, not the
    excess; a spike in the largest market does not enter the others' f. Each day's
    block expectation is then scaled by that day's own level, read from its hours
    outside the block, so a busy day for the market is not a spike.

    A *pattern* is a kind of local day (:data:`_DAY_SETS`: weekends, weekdays, each
    weekday) and a block of local hours (``spike_block_hours`` long). Its count
    ``R_p`` sums the block over the pattern's days; its variance carries the
    baskets (``φ_m = Σ q² / Σ q`` over the market's sale rows, a quasi-Poisson
    dispersion), the block's shape noise (``σ²_m``, :func:`_extra_variance`), the
    error of the expectation (a mean over the other days) and an empirical null
    (Efron 2004): how far that kind of day and block strays from expectation across
    all markets. The p-value is the quasi-Poisson tail (:func:`_gamma_tail`);
    ``p_adjusted`` multiplies it by the markets × patterns tested. Gaps (a
    market-hour without any event or look-up where three were expected) are left out.

    A pattern is a regional spike when ``p_adjusted ≤ spike_alpha``, it still passes
    without its strongest day (at ``spike_alpha`` over markets × kinds of day), its
    concentration ``c = Σ (R − E) / Σ (R − p · f̄)`` (the share of the market's lift
    over its own baseline that the shared lift leaves unexplained) is at least
    ``spike_min_concentration``, and at least ``spike_min_days`` of its days each
    show ``spike_min_excess`` orders above expectation and ``R ≥ spike_min_lift · E``.
    The most significant such pattern is reported per market.

    Score: the concentration-weighted number of supporting days (a market spiking
    alone on 4 days scores ≈ 4). ``stats["pattern"]`` is ``weekend`` or ``weekday``
    by the kind of local day; ``stats["days"]`` and ``stats["local_hours"]`` name it.

    Returns:
        ``(detections, notes)``: one detection per market, strongest first, and what
        could not be judged (fewer than ``spike_min_weeks`` weeks of data).

    References:
        Efron, B. (2004). Large-scale simultaneous hypothesis testing: the choice of
        a null hypothesis. *JASA* 99(465), 96–104.
    """
    markets, R = _by_market(panel, panel.units)
    _, R2 = _by_market(panel, panel.units_sq)
    M, T = R.shape
    days_of_data = T / 24.0
    if days_of_data < 7 * params.spike_min_weeks:
        return [], [
            NotJudged(
                "regional_spike",
                f"{days_of_data:.1f} days of data: too few to tell a recurring spike from noise",
                f"{params.spike_min_weeks:g} weeks of data",
            )
        ]
    notes: list[NotJudged] = []
    total = R.sum(1)
    phi = np.where(total > 0, R2.sum(1) / np.maximum(total, 1e-12), 1.0)
    phi = np.maximum(phi, 1.0)
    kappa = params.common_pseudo_units
    floor = np.maximum(0.01 * total / T, 1e-3)
    mi = np.arange(M)[:, None]
    _, activity = _by_market(
        panel, panel.units + panel.returns + panel.restocks + panel.stimuli + panel.lookups
    )
    f = np.ones_like(R)
    seen = np.ones_like(R, dtype=bool)
    others_R = np.full_like(R, np.inf)
    # A market-hour without any event or look-up where 3 or more were expected is a
    # recorder gap, not a quiet hour, and so is an hour without any in every market:
    # gaps are left out of baselines, factors and tests.
    usual = _local_profile(activity, panel, np.zeros(M), seen=np.ones_like(R, dtype=bool))
    expected_activity = usual[mi, panel.local_hour]
    seen = (activity > 0) | (expected_activity < 3.0)
    seen &= (activity.sum(0) > 0) | (expected_activity.sum(0) < 3.0)
    # One shared factor F (normalised to a median of 1, so it and the profiles
    # cannot drift apart in scale), then each market's leave-out version of it.
    Rs = np.where(seen, R, 0.0)
    F = np.ones(T)
    for _ in range(3):
        Bt = _robust_profile(R / F[None, :], panel, floor, seen=seen)[mi, panel.local_hour]
        Bs = np.where(seen, Bt, 0.0)
        F = (Rs.sum(0) + kappa) / (Bs.sum(0) + kappa)
        busy = Bs.sum(0) > kappa
        F = F / (np.median(F[busy]) if busy.any() else 1.0)
    f = np.ones_like(R)
    if M > 2:
        # Leave out the market itself and, of the others, the one furthest above its
        # expectation: a spike in the largest market is not a lift every market
        # shares, while a national lift still shows in all the rest.
        dev = np.where(seen, (R - Bt * F) / np.sqrt(phi[:, None] * Bt * F + 1.0), -np.inf)
        order = np.argsort(-dev, axis=0)
        top1, top2 = order[0], order[1]
        cols = np.arange(T)
        out_row = np.where(np.arange(M)[:, None] == top1[None, :], top2[None, :], top1[None, :])
        others_R = Rs.sum(0) - Rs - Rs[out_row, cols]
        others_B = Bs.sum(0) - Bs - Bs[out_row, cols]
    elif M == 2:
        others_R, others_B = Rs[::-1], Bs[::-1]
    if M > 1:
        f = (others_R + kappa) / (others_B + kappa)
        for m in range(M):
            busy = others_B[m] > kappa
            if busy.any():
                f[m] /= np.median(f[m][busy])
    R = np.where(seen, R, 0.0)
    # Noise of the shared factor: relative variance φ̄ / (units behind it).
    phi_all = float(R2.sum() / max(R.sum(), 1e-12)) if R.sum() > 0 else 1.0

    # Local (day, hour) grids per market, then block sums over hours.
    d0 = int(panel.local_day.min())
    n_days = int(panel.local_day.max()) - d0 + 1
    cell = (mi * n_days + (panel.local_day - d0)) * 24 + panel.local_hour

    def grid(x: np.ndarray) -> np.ndarray:
        return np.bincount(cell.ravel(), weights=x.ravel(), minlength=M * n_days * 24).reshape(
            M, n_days, 24
        )

    weekday = (np.arange(d0, d0 + n_days) + 3) % 7  # 1970-01-01 was a Thursday
    blocks = [(h, L) for L in params.spike_block_hours for h in range(0, 25 - L)]
    n_tests = M * len(_DAY_SETS) * len(blocks)

    def block(x: np.ndarray) -> np.ndarray:  # [M, D, 24] -> [M, D, nb]
        c = np.concatenate([np.zeros(x.shape[:2] + (1,)), np.cumsum(x, axis=2)], axis=2)
        return np.stack([c[:, :, h + L] - c[:, :, h] for h, L in blocks], axis=2)

    masks = np.stack([np.isin(weekday, s) for _, s in _DAY_SETS])  # [K, D]
    Rb = block(grid(R))
    K = len(_DAY_SETS)
    Rday = Rb[:, :, -1] if blocks[-1] == (0, 24) else grid(R).sum(2)

    def expectation(own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block expectation on each day given the rest of that day, the base
        variance of the block's count, and the expectation with no day level."""
        E = np.where(seen, own * f, 0.0)
        W = E * E * phi_all / (others_R + kappa)
        Eg = grid(E)
        e_raw = block(Eg)
        # The day's own level from its hours outside the block: a busy day for the
        # market (day-to-day over-dispersion) is not a spike in one block.
        e_out = Eg.sum(2)[:, :, None] - e_raw
        level = (Rday[:, :, None] - Rb + kappa) / (e_out + kappa)
        e = e_raw * level
        v0 = block(grid(phi[:, None] * E + W)) * level**2 + e * e * phi[:, None, None] / (
            e_out + kappa
        )
        return e, v0, e_raw

    # Hour-of-day shape noise left once each day's level is known (σ²_w).
    e_all, v_all, e_raw_all = expectation(
        _local_profile(R / f, panel, floor, seen=seen)[mi, panel.local_hour]
    )
    four = np.array([L == 4 for _, L in blocks])
    sigma2 = _extra_variance(
        Rb[:, :, four].reshape(M, -1),
        e_all[:, :, four].reshape(M, -1),
        np.maximum(v_all[:, :, four].reshape(M, -1), 1e-9),
        (e_raw_all[:, :, four] >= 3.0).reshape(M, -1),
    )
    Eb, Bb, Vb = (np.empty((K, *Rb.shape)) for _ in range(3))
    base_var = np.empty((K, M, len(blocks)))  # relative variance of the expectation
    for k, (_, wdays) in enumerate(_DAY_SETS):
        # The pattern's days are predicted from the other days only, so the spike
        # being tested does not raise its own expectation.
        outside = np.setdiff1d(np.arange(7), wdays)
        own = _local_profile(R / f, panel, floor, outside, seen=seen)[mi, panel.local_hour]
        e, v0, e_raw = expectation(own)
        # The market's own baseline at its usual level of the shared factor: what it
        # would sell in these hours with no lift at all.
        fbar = np.where(seen, own * f, 0.0).sum(1) / np.maximum(
            np.where(seen, own, 0.0).sum(1), 1e-12
        )
        Eb[k], Bb[k] = e, block(grid(np.where(seen, own * fbar[:, None], 0.0)))
        # Shape noise twice: in the block, and in the rest of the day that sets its level.
        Vb[k] = v0 + 2.0 * sigma2[:, None, None] * e * e
        # The expectation's shape is a mean over the other days: its error is shared
        # by every day of the pattern, so it enters the pattern's variance once.
        n_out = np.maximum(np.isin(weekday, outside).sum(), 1)
        base_var[k] = (sigma2[:, None] + phi[:, None] / np.maximum(e_raw.mean(1), 1e-3)) / n_out
    # Excess counted in orders (units / φ): one big basket cannot make a spike day.
    support = (Rb - Eb >= params.spike_min_excess * phi[None, :, None, None]) & (
        Rb >= params.spike_min_lift * Eb
    )
    support &= masks[:, None, :, None]
    in_k = masks[:, None, :, None].astype(float)
    Rp = np.einsum("kd,mdb->mkb", masks.astype(float), Rb)
    Ep, Bp, Vp = ((x * in_k).sum(2).transpose(1, 0, 2) for x in (Eb, Bb, Vb))
    Vp = Vp + base_var.transpose(1, 0, 2) * Ep**2
    # Empirical null (Efron 2004): how far a kind of day and block strays from its
    # expectation across all markets and blocks, beyond the modelled noise. Markets
    # differ in their weekly rhythm more than counting noise says; one market's
    # spike barely moves the median over markets x blocks.
    with np.errstate(all="ignore"):
        ell2 = np.log((Rp + 1.0) / (Ep + 1.0)) ** 2
        rel = Vp / np.maximum(Ep, 1.0) ** 2
    tau2 = np.zeros(K)
    for k in range(K):
        ok_cells = Ep[:, k, :] >= 5.0
        if ok_cells.sum() >= 8:
            tau2[k] = max(
                0.0,
                float(np.median(ell2[:, k, :][ok_cells])) / 0.455
                - float(np.median(rel[:, k, :][ok_cells])),
            )
    Vp = Vp + tau2[None, :, None] * Ep**2
    days_sup = support.sum(2).transpose(1, 0, 2)
    p = _gamma_tail(Rp, Ep, np.maximum(Vp / np.maximum(Ep, 1e-12), 1.0))
    # Recurrence: without its strongest day the pattern must still pass.
    top = np.argmax(np.where(masks[:, None, :, None], Rb[None] - Eb, -np.inf), axis=2)  # [K,M,nb]
    take = lambda x: np.take_along_axis(x, top[:, :, None, :], axis=2)[:, :, 0].transpose(1, 0, 2)  # noqa: E731
    R_top = np.take_along_axis(np.broadcast_to(Rb, Eb.shape), top[:, :, None, :], axis=2)[:, :, 0]
    Rd, Ed = Rp - R_top.transpose(1, 0, 2), Ep - take(Eb)
    Vd = Vp - take(Vb) - (base_var.transpose(1, 0, 2) + tau2[None, :, None]) * (Ep**2 - Ed**2)
    p_drop = _gamma_tail(Rd, Ed, np.maximum(Vd / np.maximum(Ed, 1e-12), 1.0))
    with np.errstate(all="ignore"):
        conc = np.clip(np.where(Rp > Bp, (Rp - Ep) / (Rp - Bp), 0.0), 0.0, 1.0)
    ok = (
        (p * n_tests <= params.spike_alpha)
        & (p_drop * M * len(_DAY_SETS) <= params.spike_alpha)
        & (conc >= params.spike_min_concentration)
        & (days_sup >= params.spike_min_days)
    )
    best_p = np.where(ok, p, np.inf).reshape(M, -1).min(1)
    market_p = np.minimum(p.reshape(M, -1).min(1) * n_tests, 1.0)
    q_all = _bh(market_p)
    sku_rows = pd.factorize(panel.keys["market"], sort=True)[0]

    out: list[Detection] = []
    for m in np.flatnonzero(np.isfinite(best_p)):
        k, b = np.unravel_index(np.argmin(np.where(ok[m], p[m], np.inf)), p[m].shape)
        h0, L = blocks[b]
        label, wdays = _DAY_SETS[k]
        rows = np.flatnonzero(sku_rows == m)
        episodes = []
        for d in np.flatnonzero(masks[k]):
            if not support[k, m, d, b]:
                continue
            t = np.flatnonzero(
                (panel.local_day[m] == d0 + d)
                & (panel.local_hour[m] >= h0)
                & (panel.local_hour[m] < h0 + L)
            )
            if t.size == 0:
                continue
            r, e, bb = Rb[m, d, b], Eb[k, m, d, b], Bb[k, m, d, b]
            contrib = panel.units[rows][:, t].sum(1)
            top = [
                str(panel.keys["sku"].iloc[rows[i]])
                for i in np.argsort(-contrib)[:3]
                if contrib[i] > 0
            ]
            start = panel.hours[t[0]]
            episodes.append(
                Evidence(
                    kind="spike_episode",
                    start=start,
                    end=panel.hours[t[-1]] + _HOUR,
                    value=float((r - e) / np.sqrt(max(Vb[k, m, d, b], 1e-12))),
                    detail={
                        "units": float(r),
                        "expected_units": float(e),
                        "baseline_units": float(bb),
                        "lift": float(r / max(e, 1e-12)),
                        "concentration": float(np.clip((r - e) / (r - bb), 0, 1))
                        if r > bb
                        else 0.0,
                        "top_skus": top,
                        "weekday": int(weekday[d]),
                        "local_start": start.tz_convert(panel.timezones[markets[m]]).isoformat(),
                    },
                )
            )
        if len(episodes) < params.spike_min_days:
            continue
        weekend = float(np.mean([e.detail["weekday"] >= 5 for e in episodes]))
        pattern = "weekend" if set(wdays) <= {5, 6} else "weekday" if max(wdays) <= 4 else "mixed"
        out.append(
            Detection(
                archetype="regional_spike",
                score=float(sum(e.detail["concentration"] for e in episodes)),
                detected_at=episodes[-1].end,
                market=markets[m],
                evidence=tuple(episodes),
                stats={
                    "spike_days": float(len(episodes)),
                    "pattern_days": float(masks[k].sum()),
                    "episodes": float(len(episodes)),
                    "days": label,
                    "local_hours": f"{h0:02d}:00-{h0 + L:02d}:00",
                    "timezone": panel.timezones[markets[m]],
                    "units": float(Rp[m, k, b]),
                    "expected_units": float(Ep[m, k, b]),
                    "lift": float(Rp[m, k, b] / max(Ep[m, k, b], 1e-12)),
                    "mean_concentration": float(conc[m, k, b]),
                    "max_z": float((Rp[m, k, b] - Ep[m, k, b]) / np.sqrt(Vp[m, k, b])),
                    "basket_dispersion": float(phi[m]),
                    "block_overdispersion": float(sigma2[m]),
                    "pattern_overdispersion": float(tau2[k]),
                    "weekend_share": weekend,
                    "pattern": pattern,
                    "p_value": float(p[m, k, b]),
                    "p_adjusted": float(min(1.0, p[m, k, b] * n_tests)),
                    "p_adjusted_without_top_day": float(min(1.0, p_drop[m, k, b] * M * K)),
                    "q_value": float(q_all[m]),
                    "tests": float(n_tests),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score), notes
