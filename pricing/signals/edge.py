"""``edge_acceleration``: a market reprices and restocks within hours of a demand shock
and converts price look-ups into sales better than the typical market."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pricing.signals.common import Detection, Evidence, NotJudged, SignalPanel, SignalParams
from pricing.signals.stats import _bh

__all__ = ["detect_edge_acceleration"]


def _next_true(flag: np.ndarray) -> np.ndarray:
    """``[N, T]`` index of the first True at or after each hour (T when none)."""
    T = flag.shape[1]
    idx = np.where(flag, np.arange(T)[None, :], T)
    return np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]


def _scheduled_restocks(panel: SignalPanel, params: SignalParams) -> np.ndarray:
    """``[N, T]`` restock hours that are scheduled, not reactions.

    Scheduled: written by the service's wave releases (``event_id`` ``wave-...``), or
    at a local hour of day at which the SKU-market restocks on at least
    ``schedule_min_days`` days and 30 % of the days (a fixed daily schedule keeps its
    local hour across a daylight-saving switch).
    """
    N, T = panel.restocks.shape
    m_of_row = np.searchsorted(
        np.asarray(panel.markets), panel.keys["market"].astype(str).to_numpy()
    )
    lh = panel.local_hour[m_of_row]
    day = panel.local_day[m_of_row]
    other = (panel.restocks - panel.wave_restocks) > 0
    n_days = len(np.unique(panel.local_day))
    n, tt = np.nonzero(other)
    cell = n * 24 + lh[n, tt]
    pairs = np.unique(np.stack([cell, day[n, tt]]), axis=1)
    counts = np.bincount(pairs[0], minlength=N * 24).reshape(N, 24)
    recurring = counts >= max(params.schedule_min_days, 0.3 * n_days)
    return (panel.wave_restocks > 0) | (other & recurring[np.arange(N)[:, None], lh])


def detect_edge_acceleration(
    panel: SignalPanel, params: SignalParams = SignalParams()
) -> list[Detection]:
    """Markets that react within hours of a shock and convert better than the others.

    See :func:`_edge_acceleration` for the statistics; this returns its detections
    (none without look-ups: :func:`scan_signals` says so).
    """
    return _edge_acceleration(panel, params)[0]


def _edge_acceleration(
    panel: SignalPanel, params: SignalParams
) -> tuple[list[Detection], list[NotJudged]]:
    """Markets that react within hours of a shock and convert clearly better.

    Shocks: a SKU-market's stimulus hours (announcements, claims, listings) preceded
    by ``shock_quiet_hours`` without one. Reaction: hours from the shock to the first
    hour at or after it whose price moves by at least ``reprice_pct`` against the
    hour before, or that receives a *reactive* restock (scheduled ones,
    :func:`_scheduled_restocks`, do not count); censored at ``max_reaction_hours``.
    A market's reaction time is the median over its shocks; its peers' the median
    over every other market's shocks.

    Conversion is units per price look-up, ``c_m = Σ units / Σ look-ups``. It is
    compared with the *median* market's, not with pooled peers (which the largest
    market dominates), on the log scale with a standard error from the day-to-day
    spread of each market's daily conversion (baskets and busy days included)::

        z = log(c_m / median_{m'≠m} c_m') / √(se_m² + median_{m'≠m} se_m'²)

    A market is detected when it has ``edge_min_shocks`` shocks, a median reaction
    ≤ ``edge_fast_hours`` and below its peers', ``c_m / median ≥
    edge_min_conversion_ratio`` (the effect-size floor: with tens of thousands of
    look-ups any gap is "significant") and ``p_adjusted = P(Z ≥ z) · M ≤ edge_alpha``.

    Score: ``log(conversion ratio) + log(peer reaction / max(1, own reaction))``.

    Returns:
        ``(detections, notes)``; without look-ups no detection and a note.
    """
    if not panel.has_lookups:
        return [], [
            NotJudged(
                "edge_acceleration",
                "no price look-ups: conversion is unknown, so edge acceleration was not judged",
                "the served-price look-ups (hour, sku, market, lookups)",
            )
        ]
    N, T = panel.units.shape
    stim = panel.stimuli > 0
    cs = np.concatenate([np.zeros((N, 1)), np.cumsum(stim, axis=1)], axis=1)
    q = params.shock_quiet_hours
    t_idx = np.arange(T)
    prior = cs[:, t_idx] - cs[:, np.maximum(t_idx - q, 0)]
    onset = stim & (prior == 0)
    logp = np.log(panel.price)
    step = np.zeros_like(stim)
    with np.errstate(invalid="ignore"):
        step[:, 1:] = np.abs(np.diff(logp, axis=1)) >= np.log1p(params.reprice_pct / 100.0)
    scheduled = _scheduled_restocks(panel, params)
    react = step | ((panel.restocks > 0) & ~scheduled)
    nxt = _next_true(react)
    n_idx, t_on = np.nonzero(onset)
    reaction = np.minimum(nxt[n_idx, t_on] - t_on, params.max_reaction_hours).astype(float)
    codes, markets = pd.factorize(panel.keys["market"], sort=True)
    M = len(markets)
    shock_market = codes[n_idx]
    # Daily conversion per market (local days): its spread is the standard error.
    m_of_row = codes
    day = panel.local_day[m_of_row]
    d0 = int(day.min())
    nd = int(day.max()) - d0 + 1
    cell = (m_of_row[:, None] * nd + (day - d0)).ravel()
    du = np.bincount(cell, weights=panel.units.ravel(), minlength=M * nd).reshape(M, nd)
    dl = np.bincount(cell, weights=panel.lookups.ravel(), minlength=M * nd).reshape(M, nd)
    units, looks = du.sum(1), dl.sum(1)
    conv = np.where(looks > 0, units / np.maximum(looks, 1e-12), np.nan)
    se = np.full(M, np.nan)
    for m in range(M):
        ok = dl[m] >= 20
        if ok.sum() >= 3:
            lc = np.log((du[m, ok] + 0.5) / (dl[m, ok] + 0.5))
            se[m] = float(np.std(lc, ddof=1) / np.sqrt(ok.sum()))
    judged = np.isfinite(conv) & np.isfinite(se)
    n_tested = int(judged.sum())
    pv = np.ones(M)
    zc = np.full(M, np.nan)
    peer_c = np.full(M, np.nan)
    for m in np.flatnonzero(judged):
        others = judged & (np.arange(M) != m)
        if not others.any():
            continue
        peer_c[m] = float(np.median(conv[others]))
        zc[m] = float(
            np.log(conv[m] / peer_c[m]) / np.sqrt(se[m] ** 2 + np.median(se[others] ** 2))
        )
        pv[m] = float(stats.norm.sf(zc[m]))
    p_adj = np.minimum(pv * max(n_tested, 1), 1.0)
    qv = _bh(p_adj)

    out: list[Detection] = []
    for m in range(M):
        mine = shock_market == m
        if mine.sum() < params.edge_min_shocks or not np.isfinite(zc[m]):
            continue
        own = float(np.median(reaction[mine]))
        peers_r = reaction[~mine]
        peer = float(np.median(peers_r)) if peers_r.size else float("nan")
        ratio = float(conv[m] / peer_c[m]) if peer_c[m] > 0 else float("inf")
        if not (
            own <= params.edge_fast_hours
            and (not np.isfinite(peer) or own < peer)
            and ratio >= params.edge_min_conversion_ratio
            and p_adj[m] <= params.edge_alpha
        ):
            continue
        sel = np.flatnonzero(mine)
        evidence = tuple(
            Evidence(
                kind="shock_reaction",
                start=panel.hours[t_on[i]],
                end=panel.hours[t_on[i]] + pd.Timedelta(hours=float(reaction[i]) + 1),
                value=float(reaction[i]),
                detail={
                    "sku": str(panel.keys["sku"].iloc[n_idx[i]]),
                    "censored": bool(reaction[i] >= params.max_reaction_hours),
                },
            )
            for i in sel[np.argsort(t_on[sel], kind="stable")]
        )
        score = float(np.log(ratio) + np.log((peer if np.isfinite(peer) else own) / max(1.0, own)))
        out.append(
            Detection(
                archetype="edge_acceleration",
                score=score,
                detected_at=max(e.end for e in evidence),
                market=str(markets[m]),
                evidence=evidence,
                stats={
                    "shocks": float(mine.sum()),
                    "median_reaction_hours": own,
                    "peer_median_reaction_hours": peer,
                    "conversion": float(conv[m]),
                    "peer_conversion": float(peer_c[m]),
                    "conversion_ratio": ratio,
                    "conversion_z": float(zc[m]),
                    "conversion_rank": float(1 + np.sum(conv[judged] > conv[m])),
                    "scheduled_restocks_ignored": float(scheduled.sum()),
                    "p_value": float(pv[m]),
                    "p_adjusted": float(p_adj[m]),
                    "q_value": float(qv[m]),
                    "tests": float(n_tested),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score), []
