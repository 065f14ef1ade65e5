"""The re-fit's fit stage: the joint demand fit, the parameter checks, the held-out check.

Parameter checks (so the solver only sees sane demand): a row whose elasticity is not
finite or lies outside its category's ``allowed_range`` keeps its previous fit's
elasticity (when that one is finite and in range) or falls back to the category prior
mean (the fallback prior's, :data:`pricing.model.FALLBACK_PRIOR`, without a category).
The replacement keeps the fitted demand level at the SKU's reference price
``p_ref`` (geometric mean of its observed prices) and changes only the slope:

.. math:: \\lambda'(p) = \\lambda(p)\\,(p / p_{ref})^{\\beta' - \\beta}

A row whose demand is still not finite is left out (it keeps its live surface).

Held-out check: the panel's most recent :data:`VALIDATION_FRACTION` of hours is held
out; the model is refitted on the earlier hours (warm-started from the new fit, so a
few Newton steps) and predicts each held-out hour at its observed price, hour of day
and intensity; the naive predictive is each (SKU, market)'s mean units per hour over
the earlier hours. Both are scored by mean Poisson deviance over the held-out hours
that did not end sold out (:func:`pricing.validation.holdout_score`). When the model's
deviance exceeds the naive one by more than the margin (``validation_margin``, 10 % by
default), nothing is published. A panel with fewer than :data:`VALIDATION_MIN_CELLS`
scorable held-out hours is not judged. The check is deterministic: same panel, same
scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from pricing.model import FALLBACK_PRIOR
from service.config.models import ConfigBundle
from service.refit.progress import REFIT_HOLDOUT_DEVIANCE, REFIT_VALIDATIONS

__all__ = [
    "VALIDATION_FRACTION",
    "VALIDATION_MIN_CELLS",
    "check_elasticities",
    "fit_panel",
    "fit_summary",
    "holdout_check",
]

VALIDATION_FRACTION = 0.15
"""Share of the panel's most recent hours held out by the re-fit's held-out check."""
VALIDATION_MIN_CELLS = 50
"""Fewest scorable held-out (SKU, market, hour) cells for the held-out check to judge."""


def fit_panel(
    panel: pd.DataFrame, bundle: ConfigBundle, previous: Any, devices: Sequence[Any]
) -> Any:
    """One joint fit on one device; on several, one fit per block of SKUs per device.

    With ``D`` devices the (SKU, market) rows are cut into ``D`` contiguous blocks
    (sorted keys, equal sizes, :func:`pricing.sharding.row_blocks`); each block is
    fitted on its own device, in parallel, and the results are merged
    (:func:`pricing.sharding.merge_fits`). Rows are independent given the shared daily
    profile, which each block estimates from its own SKUs.

    Args:
        panel: the hourly panel with its ``intensity`` column.
        bundle: the config (category priors, each SKU's category).
        previous: the live version's fit to warm-start from, or ``None``.
        devices: from :func:`service.refit.devices.select_devices`.
    """
    import jax

    from pricing.model import fit_elasticity
    from pricing.sharding import merge_fits, row_blocks

    cats = bundle.categories.categories
    sku_cat = {s.sku: s.category for dr in bundle.drops for s in dr.skus}

    def fit_block(block: pd.DataFrame, device: Any) -> Any:
        with jax.default_device(device):
            return fit_elasticity(
                block,
                sku="sku",
                market="market",
                period="period",
                price="price",
                quantity="quantity",
                intensity="intensity",
                sold_out="sold_out",
                priors={name: (p.mean, p.sd) for name, p in cats.items()} or None,
                categories={s: sku_cat[s] for s in block["sku"].unique() if s in sku_cat},
                init=previous,
            )

    pairs = panel[["sku", "market"]].drop_duplicates().sort_values(["sku", "market"])
    if len(devices) == 1 or len(pairs) < 2 * len(devices):
        return fit_block(panel, devices[0])
    block_of = pd.Series(
        row_blocks(len(pairs), len(devices)), index=pd.MultiIndex.from_frame(pairs)
    )
    which = block_of.reindex(pd.MultiIndex.from_frame(panel[["sku", "market"]])).to_numpy()
    blocks = [panel[which == b] for b in range(len(devices))]
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        fits = list(pool.map(fit_block, blocks, devices))
    return merge_fits(fits)


def holdout_check(
    panel: pd.DataFrame,
    fit: Any,
    bundle: ConfigBundle,
    devices: Sequence[Any],
    margin: float | None,
) -> dict[str, Any]:
    """Score a refit on the earlier hours against the naive mean on the latest ones.

    Args:
        panel: the panel ``fit`` was fitted on.
        fit: the new fit (the warm start of the refit on the earlier hours).
        bundle: the config (as for :func:`fit_panel`).
        devices: as for :func:`fit_panel`.
        margin: reject when the model's deviance exceeds the naive one's by more than
            this fraction; ``None`` turns the check off.

    Returns:
        The fit-stage detail: ``outcome`` (``passed``, ``rejected``, ``skipped``), the
        scores (:meth:`pricing.validation.HoldoutScore.to_dict`), the hours held out and,
        when rejected or skipped, the ``reason``.
    """
    from pricing.validation import holdout_score, holdout_split

    out: dict[str, Any] = {"margin": margin}
    skipped = _holdout_skip_reason(panel, margin)
    if skipped is None:
        train, test = holdout_split(panel, fraction=VALIDATION_FRACTION)
        out["holdout_from"] = pd.Timestamp(test["period"].min()).isoformat()
        out["holdout_hours"] = int(test["period"].nunique())
        scorable = int((~test["sold_out"].to_numpy(bool)).sum())
        if train.empty or scorable < VALIDATION_MIN_CELLS:
            skipped = (
                f"{scorable} scorable held-out hour(s), the check needs {VALIDATION_MIN_CELLS}"
            )
    if skipped is not None or margin is None:
        out.update(outcome="skipped", reason=skipped)
        REFIT_VALIDATIONS.labels("skipped").inc()
        return out
    early = fit_panel(train, bundle, fit, devices)
    score = holdout_score(
        early, train, test, market="market", intensity="intensity", sold_out="sold_out"
    )
    out.update(score.to_dict())
    out.update(_judge(score, margin, out["holdout_hours"]))
    REFIT_VALIDATIONS.labels(out["outcome"]).inc()
    if score.n_cells:
        REFIT_HOLDOUT_DEVIANCE.labels("model").observe(score.model_deviance)
        REFIT_HOLDOUT_DEVIANCE.labels("naive").observe(score.naive_deviance)
    return out


def _holdout_skip_reason(panel: pd.DataFrame, margin: float | None) -> str | None:
    """Why the held-out check cannot run on ``panel`` at all, ``None`` when it can."""
    if margin is None:
        return "held-out check turned off"
    n_periods = int(panel["period"].nunique())
    if n_periods < 2:
        return f"{n_periods} hour(s) in the panel: none to hold out"
    return None


def _judge(score: Any, margin: float, hours: int) -> dict[str, Any]:
    """The outcome (and reason) of a computed held-out score."""
    if score.n_cells < VALIDATION_MIN_CELLS:
        return {
            "outcome": "skipped",
            "reason": f"{score.n_cells} held-out hour(s) could be scored, the check needs "
            f"{VALIDATION_MIN_CELLS}",
        }
    if score.worse_than_naive(margin):
        return {
            "outcome": "rejected",
            "reason": (
                f"held-out check: the new fit's mean Poisson deviance "
                f"{score.model_deviance:.4g} on the last {hours} hour(s) "
                f"is worse than the naive per-SKU mean's {score.naive_deviance:.4g} by "
                f"more than {margin:.0%}; nothing published, the live "
                "surfaces stay"
            ),
        }
    return {"outcome": "passed"}


def check_elasticities(
    fit: Any, previous: Any, bundle: ConfigBundle, reasons: list[str]
) -> dict[int, float]:
    """Rows whose elasticity is rejected -> the elasticity used instead (see the module
    docstring); each replacement's reason is appended to ``reasons``."""
    table = fit.table
    sku_cat = {s.sku: s.category for dr in bundle.drops for s in dr.skus}
    cats = bundle.categories.categories
    prev_beta: dict[tuple[str, str], float] = {}
    if previous is not None:
        for key, beta in zip(previous.keys, np.asarray(previous.table["elasticity"]), strict=True):
            prev_beta[(key[0], key[1])] = float(beta)
    replace: dict[int, float] = {}
    betas = np.asarray(table["elasticity"], dtype=float)
    for i, key in enumerate(fit.keys):
        sku, market = key[0], key[1]
        prior = cats.get(sku_cat.get(sku, ""))
        lo, hi = prior.allowed_range if prior is not None else (-math.inf, 0.0)
        beta = betas[i]
        if math.isfinite(beta) and lo <= beta <= hi:
            continue
        old = prev_beta.get((sku, market))
        if old is not None and math.isfinite(old) and lo <= old <= hi:
            new, source = old, "its previous fit"
        elif prior is not None:
            new, source = prior.mean, f"the {sku_cat[sku]} prior mean"
        else:
            new, source = FALLBACK_PRIOR.mean, "the fallback prior mean (no category prior)"
        replace[i] = new
        reasons.append(
            f"{sku}/{market}: elasticity {beta:.4g} outside allowed range [{lo}, {hi}]; "
            f"using {new:.4g} from {source}"
        )
    return replace


def fit_summary(fit: Any, replace: Mapping[int, float]) -> dict[str, Any]:
    """The fit's facts kept in the record and the published version's meta."""
    table = fit.table
    beta = np.asarray(table["elasticity"], dtype=float)
    finite = beta[np.isfinite(beta)]
    return {
        "rows": int(len(table)),
        "converged": int(np.asarray(table["converged"]).sum()),
        "median_elasticity": float(np.median(finite)) if finite.size else None,
        "elasticity_p10_p90": [float(np.percentile(finite, 10)), float(np.percentile(finite, 90))]
        if finite.size
        else None,
        "elasticities_replaced": len(replace),
    }
