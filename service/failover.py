"""A drop's failover SKUs per market, for the stock plan and the explain route.

The drop config's ``failover`` pairs (:class:`service.config.models.FailoverPair`) read
through :func:`pricing.allocation.failover.failover_table`, so a share estimated from the
sales (when one is passed) and a declared one are named the same way everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from pricing.allocation.failover import Failover
    from service.config.models import DropConfig

__all__ = ["drop_failover", "failover_of"]


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
