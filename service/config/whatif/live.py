"""What is live for one SKU-market: its surface, the fit saved with it, its config and
units left; and the candidate changes a preview takes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.config.models import ConfigBundle, DropConfig, Guardrails, SkuConfig
from service.exceptions import DropPriceError, UnknownMarket, UnknownSku
from service.store import PriceStore, SurfaceRecord

__all__ = ["Evaluation", "LiveRow", "NoLiveSurface", "PreviewChanges", "load_live_row"]


class NoLiveSurface(DropPriceError):
    """The SKU has no published surface in that market yet (it serves its list price).

    Fix: run a re-fit (``dropprice refit``) once the drop has sales or signals; explain
    and preview need a published surface and its fit.
    """


class PreviewChanges:
    """Candidate changes for one SKU (all optional); see :func:`preview`."""

    def __init__(
        self,
        *,
        guardrails: Guardrails | None = None,
        elasticity: float | None = None,
        category_prior: tuple[float, float] | None = None,
        list_price: float | None = None,
        unit_cost: float | None = None,
        salvage_value: float | None = None,
        units_left: int | None = None,
    ) -> None:
        self.guardrails = guardrails
        self.elasticity = elasticity
        self.category_prior = category_prior
        self.list_price = list_price
        self.unit_cost = unit_cost
        self.salvage_value = salvage_value
        self.units_left = units_left


@dataclass
class LiveRow:
    """Everything live about one (SKU, market)."""

    sku: str
    market: str
    drop: DropConfig
    sku_config: SkuConfig
    rails: Guardrails
    version: str
    surface: SurfaceRecord
    units_left: int
    fit: Any | None
    fit_row: int | None
    fit_id: str | None
    reference_time: datetime
    """When the surface was solved (its intensity forecast starts there)."""
    notes: list[str] = field(default_factory=list)

    @property
    def beta(self) -> float | None:
        el = self.surface.elasticity or {}
        return float(el["beta"]) if "beta" in el else None

    @property
    def intensity_at_publish(self) -> float:
        return float((self.surface.explain or {}).get("intensity_now", 0.0) or 0.0)


class Evaluation(dict[str, Any]):
    """Expected outcome of a surface from (units now, period now) (a JSON-ready dict)."""


_FITS: OrderedDict[str, Any] = OrderedDict()
_FITS_LOCK = threading.Lock()


def _load_fit(client: Any, fit_id: str) -> Any | None:
    """The saved :class:`pricing.model.ElasticityFit` ``fit_id`` (cached per process)."""
    with _FITS_LOCK:
        if fit_id in _FITS:
            _FITS.move_to_end(fit_id)
            return _FITS[fit_id]
    from service.store.refit_state import RefitState

    fit = RefitState(client).load_fit(fit_id)
    if fit is None:
        return None
    with _FITS_LOCK:
        _FITS[fit_id] = fit
        while len(_FITS) > 4:
            _FITS.popitem(last=False)
    return fit


def _reference_time(client: Any, surface: SurfaceRecord, published_at: datetime | None) -> datetime:
    explain = surface.explain or {}
    for key in ("computed_at", "now"):
        if explain.get(key):
            return datetime.fromisoformat(str(explain[key]))
    refit_id = explain.get("refit_id")
    if refit_id:
        from service.store.refit_state import RefitState

        record = RefitState(client).get_record(str(refit_id))
        if record is not None and record.started_at:
            return datetime.fromisoformat(record.started_at)
    return published_at or datetime.now(UTC)


def load_live_row(
    store: PriceStore,
    bundle: ConfigBundle,
    sku: str,
    market: str | None,
    *,
    units_left: int | None = None,
) -> LiveRow:
    """Collect the live surface, fit, config and units of ``sku`` in ``market``.

    Raises:
        UnknownSku: no drop sells ``sku``.
        UnknownMarket: ``market`` is not one of the SKU's, or is needed and missing.
        NoLiveSurface: nothing is published for the pair yet.
    """
    found = bundle.find_sku(sku)
    if found is None:
        raise UnknownSku(f"no drop in the live config sells SKU {sku!r}")
    drop, sku_cfg = found
    markets = sorted(sku_cfg.inventory)
    if market is None:
        if len(markets) != 1:
            raise UnknownMarket(f"SKU {sku!r} is sold in {markets}: pass ?market=one of them")
        market = markets[0]
    if market not in sku_cfg.inventory:
        raise UnknownMarket(f"SKU {sku!r} is not sold in market {market!r}, allowed {markets}")
    live = store.get_surface(sku, market)
    if live is None:
        raise NoLiveSurface(
            f"SKU {sku!r} has no published surface in {market!r} yet: it serves its list "
            f"price {sku_cfg.list_price:g}; run a re-fit first"
        )
    version, surface = live
    info = next((v for v in store.list_versions() if v.version == version), None)
    fit_id = str(info.meta.get("fit_id")) if info is not None and info.meta.get("fit_id") else None
    notes: list[str] = []
    fit = row = None
    if fit_id is not None:
        fit = _load_fit(store, fit_id)
        if fit is None:
            notes.append(f"the fit {fit_id} of version {version} is no longer stored")
        else:
            keys = [tuple(k) for k in fit.keys]
            row = keys.index((sku, market)) if (sku, market) in keys else None
            if row is None:
                notes.append(f"the fit {fit_id} has no row for {sku}/{market}")
    else:
        notes.append(f"version {version} names no fit (published without a re-fit)")
    units = units_left
    if units is None:
        got = store.get_inventory(sku, market)
        units = int(got) if got is not None else int(sku_cfg.inventory[market])
    return LiveRow(
        sku=sku,
        market=market,
        drop=drop,
        sku_config=sku_cfg,
        rails=bundle.guardrails_for(drop, sku_cfg, market),
        version=version,
        surface=surface,
        units_left=max(0, units),
        fit=fit,
        fit_row=row,
        fit_id=fit_id,
        reference_time=_reference_time(
            store, surface, info.published_at if info is not None else None
        ),
        notes=notes,
    )
