"""A drop's failover SKUs per market, for the stock plan and the explain route.

Where a variant has sold out, :func:`estimated_shares` reads where its shoppers went from
the drop's sales (the panel of the re-fit with the hours each SKU was out of stock added,
the live fit's expected units at each price and hour, then
:func:`pricing.allocation.panel_diversion`). The drop config's ``failover`` pairs
(:class:`service.config.models.FailoverPair`) cover variants that have not sold out yet.
Both go through :func:`pricing.allocation.failover.failover_table`, so they are named
the same way everywhere (an estimate wins over a declaration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pricing.allocation.failover import Failover
    from service.config.models import DropConfig
    from service.store import PriceStore

__all__ = ["drop_failover", "estimated_shares", "expected_units", "failover_of", "with_stock_outs"]


def drop_failover(
    drop: DropConfig, market: str, *, shares: np.ndarray | None = None
) -> list[Failover]:
    """Each variant's failover SKU in ``market`` among the SKUs stocked there.

    Args:
        drop: the drop config (its ``failover`` pairs).
        market: one of the drop's markets.
        shares: ``[S, S]`` shares estimated from stock-outs, in the order of the drop's
            SKUs stocked in ``market`` (:func:`pricing.allocation.estimate_diversion`).
    """
    from pricing.allocation.failover import failover_table

    skus = [s.sku for s in drop.skus if s.inventory.get(market, 0) > 0]
    declared = [(p.sku, p.to, p.share) for p in drop.failover]
    return failover_table(skus, market, shares=shares, declared=declared)


def failover_of(drop: DropConfig, sku: str, market: str) -> dict[str, Any] | None:
    """``{"sku", "share", "source"}``: who absorbs ``sku``'s demand in ``market`` if it sells out."""
    for f in drop_failover(drop, market):
        if f.sku == sku:
            return {"sku": f.absorbed_by, "share": f.share, "source": f.source}
    return None


def with_stock_outs(panel: pd.DataFrame) -> pd.DataFrame:
    """A market's panel (:func:`service.panel.build_panel`, rows only while on sale) with
    a row for each period a SKU had no stock after its first sale: ``out_of_stock``,
    no units, at its last price."""
    import pandas as pd

    periods = pd.Index(sorted(panel["period"].unique()))
    frames = []
    for (sku, market), cells in panel.groupby(["sku", "market"], sort=False):
        full = cells.set_index("period").reindex(periods[periods >= cells["period"].min()])
        gone = full["sku"].isna().to_numpy()
        full = full.assign(
            sku=sku,
            market=market,
            price=full["price"].ffill(),
            quantity=full["quantity"].fillna(0.0),
            sold_out=full["sold_out"].fillna(False).astype(bool),
            out_of_stock=gone,
        )
        frames.append(full.rename_axis("period").reset_index())
    if not frames:
        return panel.assign(out_of_stock=False)
    return pd.concat(frames, ignore_index=True)


def expected_units(panel: pd.DataFrame, fit: Any) -> np.ndarray:
    """The live fit's posterior expected units of each panel row at its price and hour
    (``nan`` for a pair the fit does not have)."""
    import numpy as np

    out = np.full(len(panel), np.nan)
    rows = {tuple(k): i for i, k in enumerate(fit.keys)}
    hours = np.arange(24)
    for (sku, market), cells in panel.groupby(["sku", "market"], sort=False):
        r = rows.get((sku, market))
        if r is None:
            continue
        prices = np.sort(cells["price"].unique())
        grid = np.ones((len(fit.keys), prices.size))
        grid[r] = prices
        with np.errstate(over="ignore", invalid="ignore"):
            rates = np.asarray(fit.posterior_rates(grid, hours=hours))[r]  # [24, K]
        k = np.searchsorted(prices, cells["price"].to_numpy())
        h = cells["period"].dt.hour.to_numpy()
        out[cells.index.to_numpy()] = rates[h, k]
    return out


def estimated_shares(store: PriceStore, drop: DropConfig, fit: Any) -> dict[str, np.ndarray]:
    """Per market, the diversion shares estimated from the drop's stock-outs so far
    (:func:`pricing.allocation.panel_diversion`), in the order :func:`drop_failover`
    takes them; markets without a fit or sales are left out."""
    import numpy as np

    from pricing.allocation.failover import panel_diversion
    from service.panel import build_panel
    from service.signal_feed import load_events

    if fit is None:
        return {}
    events = load_events(store, since=None, skus=[s.sku for s in drop.skus])
    events = events[events["market"].isin(drop.markets)]
    if events.empty:
        return {}
    inventory = {(s.sku, m): store.get_inventory(s.sku, m) for s in drop.skus for m in s.inventory}
    panel = build_panel(
        events,
        inventory_now={k: v for k, v in inventory.items() if v is not None},
        list_prices={s.sku: s.list_price for s in drop.skus},
    )
    out: dict[str, np.ndarray] = {}
    for market in drop.markets:
        skus = [s.sku for s in drop.skus if s.inventory.get(market, 0) > 0]
        cells = with_stock_outs(panel[(panel["market"] == market) & panel["sku"].isin(skus)])
        if cells.empty:
            continue
        cells = cells.assign(expected=expected_units(cells, fit))
        if cells["expected"].isna().any():
            continue
        found = panel_diversion(cells)  # rows in sorted order of the SKUs with sales
        names = sorted(cells["sku"].unique())
        shares = np.full((len(skus), len(skus)), np.nan)
        at = [skus.index(n) for n in names]
        shares[np.ix_(at, at)] = found
        out[market] = shares
    return out
