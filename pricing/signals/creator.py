"""``creator_led``: a SKU's demand follows one creator's announcements post after post."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pricing.exceptions import InputError
from pricing.signals.common import (
    _HOUR,
    _NULL_DRAWS,
    _STIMULUS_TYPES,
    Detection,
    Evidence,
    NotJudged,
    SignalPanel,
    SignalParams,
)
from pricing.signals.panel import _validate_events
from pricing.signals.stats import _bh

__all__ = ["detect_creator_led"]


def detect_creator_led(
    events: pd.DataFrame,
    panel: SignalPanel,
    params: SignalParams = SignalParams(),
) -> list[Detection]:
    """(creator, SKU) pairs whose announcements lift demand post after post.

    See :func:`_creator_led` for the statistics; this returns its detections.
    """
    return _creator_led(events, panel, params)[0]


def _creator_led(
    events: pd.DataFrame, panel: SignalPanel, params: SignalParams
) -> tuple[list[Detection], list[NotJudged]]:
    """(creator, SKU) pairs whose posts lift the SKU's sales against the other SKUs.

    An event study per post a of SKU s at hour t_a (MacKinlay 1997) over the post's
    markets (all markets when it names none). The reference is what the *other* SKUs
    sell in the same markets and hours, so weekdays, local hours, holidays, missing
    hours and lifts shared by every SKU cancel::

        θ_j   = SKU j's share of all units, over the hours its stimuli leave alone
        L_w   = Σ_{j ∈ C} U_j(w) / Σ_{j ∈ C} θ_j      implied total in window w
        ℓ_a   = log((U_s(w_a) + ½) / (θ_s L_{w_a} + ½))                 log-lift

    with ``U_j(w)`` SKU j's units in the Q-hour window w (Q = ``lift_post_hours``) and
    C the other SKUs no post, claim or listing touched near w (with fewer than two,
    the median of what each other SKU implies; a SKU sold alone is compared with the
    same hours a day earlier). The same log-lift over *placebo* windows (starting
    every ``placebo_step_hours``, away from the SKU's posts) gives the null; windows
    a claims burst touched have the burst's median lift taken out, and so do posts it
    touches. A post lifts when ``z_a = (ℓ_a − μ₀)/σ₀ ≥ lift_z`` (μ₀ the placebo
    median, σ₀ its robust spread).

    Per (creator, SKU), the effect is estimated across its unconfounded posts (no
    other creator posted the SKU within Q hours): ``m̂ = mean(ℓ_a) − μ₀`` and the
    shrunk lift ``exp(m̂ τ²/(τ² + se²))`` (``se = σ₀/√n``, τ = ``creator_prior_sd``),
    so one flop lowers the estimate instead of erasing the record. Its p-value is
    empirical: the share of means of n placebo windows drawn at random that reach
    m̂ (claims make the placebo heavy-tailed). A pair is detected when it has
    ``creator_min_announcements`` posts, ``creator_min_clean`` of them clean,
    ``p_adjusted`` (times the pairs tested) ≤ ``creator_alpha``, the same test
    without its best post ≤ ``creator_alpha`` (one big lift then nothing is not a
    record), a shrunk lift ≥ ``creator_min_lift`` and a share of lifting posts
    (``stickiness``) ≥ ``creator_min_stickiness``. Posts by one creator about one
    SKU less than Q hours apart count once (the first).

    Score: stickiness × shrunk log-lift. ``stats["lift_trend"]`` is the
    least-squares slope of ℓ over the posts (negative: the creator's pull is fading).
    ``detected_at`` is the end of the last post window that lifted.

    Returns:
        ``(detections, notes)``: one detection per (creator, SKU), strongest first;
        notes for pairs whose posts lifted but are too few, or not yet beyond noise
        (with about how many more posts would tell).
    """
    ev = _validate_events(events)
    ann = ev[ev["type"].eq("announcement")].copy()
    if ann.empty:
        return [], []
    ann["creator"] = ann["creator"].where(ann["creator"].notna(), ann["sku"]).astype(str)
    lo = panel.hours[0]
    T = len(panel.hours)
    Q, step = int(params.lift_post_hours), int(params.placebo_step_hours)
    if Q < 1 or step < 1:
        raise InputError(
            f"lift_post_hours and placebo_step_hours must be >= 1, got "
            f"lift_post_hours={Q} placebo_step_hours={step}"
        )
    ann["t"] = ((ann["ts"].dt.floor("h") - lo) // _HOUR).astype(np.int64)
    # One post recorded once per market (the service stores market-scoped events) is one
    # announcement over those markets; a row without a market covers them all.
    ann["markets"] = ann["market"].map(lambda m: None if not isinstance(m, str) else (m,))
    ann = ann.sort_values("ts", kind="stable")
    first = ann.groupby(["creator", "sku", "t"], sort=False, as_index=False).first()
    reach = ann.groupby(["creator", "sku", "t"], sort=False)["markets"].agg(
        lambda ms: None if any(m is None for m in ms) else tuple(sorted({x for m in ms for x in m}))
    )
    first["markets"] = reach.to_numpy()
    ann = first.sort_values("ts", kind="stable")
    all_t = ann["t"].to_numpy()
    all_sku = ann["sku"].astype(str).to_numpy()
    all_who = ann["creator"].to_numpy()
    other_stimuli = ev[ev["type"].isin(_STIMULUS_TYPES) & ~ev["type"].eq("announcement")]
    shock_t = {
        str(k): np.unique(v)
        for k, v in pd.Series(
            ((other_stimuli["ts"].dt.floor("h") - lo) // _HOUR).to_numpy(dtype=np.int64)
        )
        .groupby(other_stimuli["sku"].astype(str).to_numpy())
        .apply(np.asarray)
        .items()
    }
    # Posts by one creator about one SKU within Q hours are one campaign: keep the first.
    gap = ann.groupby(["creator", "sku"], sort=False)["t"].diff()
    ann = ann[gap.isna() | (gap >= Q)]
    ann = ann[(ann["t"] >= 0) & (ann["t"] + Q <= T)]
    if ann.empty:
        return [], []

    markets = list(panel.markets)
    m_index = {m: i for i, m in enumerate(markets)}
    sku_names = sorted(panel.keys["sku"].astype(str).unique())
    s_index = {k: i for i, k in enumerate(sku_names)}
    S = len(sku_names)
    units_sm = np.zeros((S, len(markets), T))
    units_sm[
        panel.keys["sku"].astype(str).map(s_index).to_numpy(),
        panel.keys["market"].astype(str).map(m_index).to_numpy(),
    ] = panel.units
    # Each SKU's stimuli (anyone's posts, claims, listings): a window starting at t is
    # touched by a stimulus at u when u is in (t − Q, t + Q); the hours [u, u + Q)
    # carry its lift.
    touched_post = np.zeros((S, T), dtype=bool)
    touched_claim = np.zeros((S, T), dtype=bool)
    lifted = np.zeros((S, T), dtype=bool)
    for k, i_s in s_index.items():
        for touched, times in (
            (touched_post, all_t[all_sku == k]),
            (touched_claim, shock_t.get(k, np.array([], dtype=np.int64))),
        ):
            for u in times:
                touched[i_s, max(int(u) - Q + 1, 0) : min(int(u) + Q, T)] = True
                lifted[i_s, max(int(u), 0) : min(int(u) + Q, T)] = True
    touched_any = touched_post | touched_claim
    starts = np.arange(0, T - Q + 1, step)
    t = ann["t"].to_numpy()
    post_ll = np.full(len(ann), np.nan)
    post_units = np.full(len(ann), np.nan)
    post_expected = np.full(len(ann), np.nan)
    null_mu = np.full(len(ann), np.nan)
    null_sd = np.full(len(ann), np.nan)
    notes: list[NotJudged] = []
    placebo: list[np.ndarray | None] = [None] * len(ann)
    cache: dict[tuple[str, tuple[str, ...] | None], Any] = {}
    by_reach: dict[tuple[str, ...] | None, tuple[np.ndarray, np.ndarray]] = {}

    def windows(i_s: int, at: np.ndarray, cum: np.ndarray, theta: np.ndarray):
        """The SKU's units in the Q-hour windows starting at ``at`` and what the other
        SKUs untouched by a stimulus predict for it (its usual share of them)."""
        W = cum[:, at + Q] - cum[:, at]
        if S == 1:  # sold alone: the same hours a day earlier
            ok = at >= 24
            prev = np.where(
                ok, cum[0, np.maximum(at - 24 + Q, 0)] - cum[0, np.maximum(at - 24, 0)], np.nan
            )
            return W[0], prev
        # Other SKUs untouched by a stimulus, pooled, when there are two or more; else
        # the median of what each other SKU implies (robust to one in a burst).
        others = np.arange(S) != i_s
        clean = ~touched_any[:, at] & others[:, None]
        num = (W * clean).sum(0)
        den = (theta[:, None] * clean).sum(0)
        level = np.full(at.size, np.nan)
        pooled = (clean.sum(0) >= 2) & (den > 0)
        level[pooled] = num[pooled] / den[pooled]
        few = np.flatnonzero(~pooled)
        if few.size:
            with np.errstate(all="ignore"):
                implied = np.where(
                    theta[others, None] > 0, W[others][:, few] / theta[others, None], np.nan
                )
                level[few] = np.nanmedian(implied, axis=0)
        return W[i_s], theta[i_s] * level

    def reference(sku: str, mkts: tuple[str, ...] | None):
        key = (sku, mkts)
        if key in cache:
            return cache[key]
        mset = (
            np.arange(len(markets))
            if mkts is None
            else np.array([m_index[m] for m in mkts if m in m_index], dtype=int)
        )
        i_s = s_index.get(sku)
        if i_s is None or mset.size == 0:
            cache[key] = None
            return None
        if mkts not in by_reach:
            U = units_sm[:, mset, :].sum(1)
            # Each SKU's usual share of the sales, from the hours its stimuli leave alone.
            quiet = ~lifted
            theta = (U * quiet).sum(1) / np.maximum((U.sum(0)[None, :] * quiet).sum(1), 1e-12)
            cum = np.concatenate([np.zeros((S, 1)), np.cumsum(U, axis=1)], axis=1)
            by_reach[mkts] = (cum, theta)
        cum, theta = by_reach[mkts]
        # Placebo windows: every window away from the SKU's posts. Those a claims burst
        # or listing touches carry its lift, measured on them and taken out (of them
        # and of posts it touches), so a post that meets a burst is not a record.
        at = starts[~touched_post[i_s, starts]]
        own, expected = windows(i_s, at, cum, theta)
        ok = np.isfinite(expected)
        ll = np.log((own[ok] + 0.5) / (expected[ok] + 0.5))
        by_claim = touched_claim[i_s, at[ok]]
        claim_ll = 0.0
        if by_claim.sum() >= 3 and (~by_claim).sum() >= 3:
            claim_ll = float(np.median(ll[by_claim]) - np.median(ll[~by_claim]))
        ll = ll - claim_ll * by_claim
        if ll.size < 8:
            cache[key] = None
            return None
        # A robust scale for one post's z (claims and busy days give heavy tails);
        # the creator's p-values use the whole placebo distribution.
        mu = float(np.median(ll))
        sd = float(max(1.4826 * np.median(np.abs(ll - mu)), 0.05))
        cache[key] = (i_s, cum, theta, mu, sd, ll - mu, claim_ll)
        return cache[key]

    for i, (sku, mkts, ta) in enumerate(
        zip(ann["sku"].astype(str), ann["markets"], t, strict=True)
    ):
        ref = reference(sku, mkts)
        if ref is None:
            continue
        i_s, cum, theta, mu, sd, null_ll, claim_ll = ref
        own, expected = windows(i_s, np.array([ta]), cum, theta)
        if not np.isfinite(expected[0]):
            continue
        placebo[i] = null_ll
        post_units[i] = float(own[0])
        post_expected[i] = float(expected[0]) * (
            np.exp(claim_ll) if touched_claim[i_s, ta] else 1.0
        )
        post_ll[i] = np.log((post_units[i] + 0.5) / (post_expected[i] + 0.5))
        null_mu[i], null_sd[i] = mu, sd
    ann["post"], ann["expected"], ann["loglift"] = post_units, post_expected, post_ll - null_mu
    ann["z"] = (post_ll - null_mu) / null_sd
    ann["null_sd"] = null_sd
    ann["placebo"] = placebo
    # Clean windows: no other creator announced the same SKU within Q hours either side,
    # else the two lifts overlap and cannot be attributed (MacKinlay 1997, clustering
    # of event dates).
    confounded = np.zeros(len(ann), dtype=bool)
    for i, (sku, who) in enumerate(zip(ann["sku"].astype(str), ann["creator"], strict=True)):
        near = (all_sku == sku) & (all_t > t[i] - Q) & (all_t < t[i] + Q) & (all_who != who)
        confounded[i] = bool(near.any())
    ann["confounded"] = confounded
    unjudged_skus = sorted(set(ann.loc[~np.isfinite(ann["z"]), "sku"].astype(str)))
    for sku in unjudged_skus:
        notes.append(
            NotJudged(
                "creator_led",
                f"SKU {sku}: too few quiet hours or reference sales to measure a post's lift",
                "more history without posts, or other SKUs sold in the same markets",
                sku=sku,
            )
        )
    ann = ann[np.isfinite(ann["z"])]

    pairs = []
    for (who, sku), g in ann.sort_values("ts").groupby(["creator", "sku"], sort=True):
        clean = g[~g["confounded"]]
        if len(g) < params.creator_min_announcements or len(clean) < max(
            2, params.creator_min_clean
        ):
            if len(g) and float(g["z"].mean()) >= 2.0 * params.lift_z:
                notes.append(
                    NotJudged(
                        "creator_led",
                        f"{who} on {sku}: {len(g)} post(s) ({len(clean)} clean) lifted sales, "
                        "too few to call a record",
                        f"{params.creator_min_announcements} posts, "
                        f"{max(2, params.creator_min_clean)} of them clean",
                        sku=str(sku),
                        creator=str(who),
                    )
                )
            continue
        sd = float(clean["null_sd"].mean())
        n = len(clean)
        m_hat = float(clean["loglift"].mean())
        se = sd / np.sqrt(n)
        # The null of a mean of n posts: means of n placebo windows drawn at random
        # (claims bursts make the placebo log-lifts heavy-tailed; a normal tail with
        # n = 3 would call a post that met a burst a record).
        null = np.concatenate(list({id(x): x for x in clean["placebo"]}.values()))
        rng = np.random.default_rng(n)
        draws = rng.choice(null, size=(_NULL_DRAWS, n)).mean(1)
        p_emp = (1.0 + float((draws >= m_hat).sum())) / (_NULL_DRAWS + 1.0)
        # Recurrence: the record must stand without its best post (one big lift
        # followed by posts that move nothing is not a creator-led SKU).
        rest = np.sort(clean["loglift"].to_numpy())[:-1]
        rest_draws = rng.choice(null, size=(_NULL_DRAWS, rest.size)).mean(1)
        p_rest = (1.0 + float((rest_draws >= rest.mean()).sum())) / (_NULL_DRAWS + 1.0)
        pairs.append((str(who), str(sku), g, clean, m_hat, se, m_hat / se, p_emp, p_rest))
    n_pairs = len(pairs)
    pvals = np.array([pr[7] for pr in pairs])
    qvals = _bh(np.minimum(pvals * max(n_pairs, 1), 1.0))
    tau2 = params.creator_prior_sd**2

    out: list[Detection] = []
    for (who, sku, g, clean, m_hat, se, z, _, p_rest), pv, qv in zip(
        pairs, pvals, qvals, strict=True
    ):
        shrunk = m_hat * tau2 / (tau2 + se * se)
        stickiness = float((g["z"].to_numpy() >= params.lift_z).mean())
        clean_stickiness = float((clean["z"].to_numpy() >= params.lift_z).mean())
        if (
            pv * n_pairs > params.creator_alpha
            or p_rest > params.creator_alpha
            or np.exp(shrunk) < params.creator_min_lift
            or stickiness < params.creator_min_stickiness
        ):
            if (
                np.exp(shrunk) >= params.creator_min_lift
                and stickiness >= params.creator_min_stickiness
                and pv * n_pairs <= 0.5
            ):
                # Lifting, but not yet told apart from noise: say how many posts would be.
                z_needed = float(stats.norm.isf(params.creator_alpha / max(n_pairs, 1)))
                more = int(np.ceil(len(clean) * (z_needed / max(z, 1e-6)) ** 2)) - len(clean)
                notes.append(
                    NotJudged(
                        "creator_led",
                        f"{who} on {sku}: {len(g)} posts lift sales x{np.exp(m_hat):.2f} on "
                        "average, not yet told apart from noise (nothing found)",
                        f"about {max(more, 1)} more clean post{'s' if more > 1 else ''}",
                        sku=sku,
                        creator=who,
                    )
                )
            continue
        n_clean = len(clean)
        trend = float(np.polyfit(np.arange(n_clean), clean["loglift"].to_numpy(), 1)[0])
        evidence = tuple(
            Evidence(
                kind="announcement",
                start=row.ts.floor("h"),
                end=row.ts.floor("h") + pd.Timedelta(hours=Q),
                value=float(row.loglift),
                detail={
                    "event_id": getattr(row, "event_id", None),
                    "reach": row.reach,
                    "markets": list(row.markets) if row.markets is not None else None,
                    "post_units": float(row.post),
                    "expected_units": float(row.expected),
                    "lift": float(np.exp(row.loglift)),
                    "z": float(row.z),
                    "lifted": bool(row.z >= params.lift_z),
                    "confounded": bool(row.confounded),
                },
            )
            for row in g.itertuples(index=False)
        )
        lifted = [e for e in evidence if e.detail["lifted"]]
        out.append(
            Detection(
                archetype="creator_led",
                score=stickiness * shrunk,
                detected_at=(lifted or evidence)[-1].end,
                sku=sku,
                creator=who,
                evidence=evidence,
                stats={
                    "announcements": float(len(g)),
                    "clean_announcements": float(n_clean),
                    "stickiness": stickiness,
                    "clean_stickiness": clean_stickiness,
                    "mean_lift": float(np.exp(m_hat)),
                    "shrunk_lift": float(np.exp(shrunk)),
                    "mean_loglift": m_hat,
                    "loglift_se": float(se),
                    "placebo_sd": float(clean["null_sd"].mean()),
                    "z": float(z),
                    "lift_trend": trend,
                    "p_value": float(pv),
                    "p_adjusted": float(min(1.0, pv * n_pairs)),
                    "p_without_best_post": float(p_rest),
                    "q_value": float(qv),
                    "tests": float(n_pairs),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score), notes
