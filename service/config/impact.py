"""What a config change does to prices: ``dropprice config diff --impact``.

For every (SKU, market) whose pricing inputs differ between the live config and the
candidate (effective guardrails, list price, unit cost, salvage value, the category
prior, the drop's windows, period or objective), the SKU's surface is re-solved the way
a re-fit would under the candidate, with the live fit (:func:`service.config.whatif.preview`),
and compared with the live surface from now: price now and expected revenue, each
before and after. A SKU the candidate adds has no surface (it opens at its list price);
one it removes stops being served.

Example:
    >>> rows = config_impact(store, live.bundle, candidate)  # doctest: +SKIP
    >>> rows[0].line()  # doctest: +SKIP
    'CMX-VAR-002 @ brooklyn-panel-page: price now 29.99 -> 34.99 (+16.7 %), ...'
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, NamedTuple

from service.config.models import ConfigBundle

__all__ = ["ImpactRow", "config_impact"]


class ImpactRow(NamedTuple):
    """The change's effect on one (SKU, market)."""

    sku: str
    market: str
    status: str
    """``resolved`` (re-solved), ``added``, ``removed`` or ``unpriced`` (no live fit)."""
    price_now: tuple[float, float] | None
    """(live, candidate) price now."""
    expected_revenue: tuple[float, float] | None
    """(live, candidate) expected revenue from now."""
    bound_by: str | None
    note: str

    def line(self) -> str:
        """One readable line."""
        head = f"{self.sku} @ {self.market}: "
        if self.price_now is None or self.expected_revenue is None:
            return head + self.note
        (p0, p1), (r0, r1) = self.price_now, self.expected_revenue
        pct = f" ({100.0 * (p1 - p0) / p0:+.1f} %)" if p0 else ""
        bound = f", bound by {self.bound_by}" if self.bound_by else ""
        return (
            f"{head}price now {p0:.2f} -> {p1:.2f}{pct}{bound}; expected revenue "
            f"{r0:,.2f} -> {r1:,.2f} ({r1 - r0:+,.2f})" + (f"; {self.note}" if self.note else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def _inputs(bundle: ConfigBundle, sku: str, market: str) -> tuple[Any, ...] | None:
    """Everything in the config a surface of ``sku`` in ``market`` depends on."""
    found = bundle.find_sku(sku)
    if found is None or market not in found[1].inventory:
        return None
    drop, cfg = found
    prior = bundle.categories.categories.get(cfg.category)
    return (
        bundle.guardrails_for(drop, cfg, market).model_dump(mode="json"),
        cfg.list_price,
        cfg.unit_cost,
        cfg.salvage_value,
        prior.model_dump(mode="json") if prior is not None else None,
        [w.model_dump(mode="json") for w in drop.windows],
        drop.period_minutes,
        drop.objective,
    )


def _pairs(bundle: ConfigBundle | None) -> set[tuple[str, str]]:
    if bundle is None:
        return set()
    return {(s.sku, m) for d in bundle.drops for s in d.skus for m in s.inventory}


def config_impact(
    store: Any,
    live: ConfigBundle | None,
    candidate: ConfigBundle,
    *,
    now: datetime | None = None,
) -> list[ImpactRow]:
    """The effect on prices of replacing ``live`` with ``candidate``, per affected pair."""
    now = now or datetime.now(UTC)
    before, after = _pairs(live), _pairs(candidate)
    rows: list[ImpactRow] = []
    for sku, market in sorted(after - before):
        cfg = candidate.find_sku(sku)
        price = cfg[1].list_price if cfg is not None else 0.0
        rows.append(
            ImpactRow(sku, market, "added", None, None, None, f"new: opens at its list {price:g}")
        )
    for sku, market in sorted(before - after):
        rows.append(ImpactRow(sku, market, "removed", None, None, None, "removed: not served"))
    if live is None:
        return rows
    for sku, market in sorted(before & after):
        if _inputs(live, sku, market) == _inputs(candidate, sku, market):
            continue
        rows.append(_resolve(store, live, candidate, sku, market, now))
    return rows


def _resolve(
    store: Any,
    live: ConfigBundle,
    candidate: ConfigBundle,
    sku: str,
    market: str,
    now: datetime,
) -> ImpactRow:
    """Re-solve one pair under the candidate config with the live fit."""
    from service.config.whatif import NoLiveSurface, PreviewChanges, load_live_row, preview

    found = candidate.find_sku(sku)
    assert found is not None
    drop, cfg = found
    try:
        row = load_live_row(store, live, sku, market)
    except NoLiveSurface as exc:
        return ImpactRow(sku, market, "unpriced", None, None, None, str(exc))
    old_prior = live.categories.categories.get(row.sku_config.category)
    new_prior = candidate.categories.categories.get(cfg.category)
    prior = None
    if new_prior is not None and new_prior != old_prior:
        prior = (new_prior.mean, new_prior.sd)
    # The candidate's drop (windows, period, objective) and SKU; the live surface and fit.
    changed = dataclasses.replace(
        row, drop=drop, sku_config=cfg, rails=candidate.guardrails_for(drop, cfg, market)
    )
    try:
        out = preview(changed, live, PreviewChanges(category_prior=prior), now=now)
    except (NoLiveSurface, ValueError) as exc:
        return ImpactRow(sku, market, "unpriced", None, None, None, str(exc))
    lv, cand = out["live"], out["candidate"]
    return ImpactRow(
        sku,
        market,
        "resolved",
        (lv["price_now"], cand["price_now"]),
        (lv["expected_revenue"], cand["expected_revenue"]),
        cand["bound_by"],
        "; ".join(out["notes"]),
    )
