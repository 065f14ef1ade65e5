"""Operator tools behind both the HTTP API and the CLI: explain, preview, approvals.

The routes (:mod:`service.routes.operator`, :mod:`service.routes.admin`) and the
commands (``dropprice explain``, ``preview``, ``approvals``, ``audit``) call these
functions, so an answer reads the same over HTTP and on a terminal. (The audit log
itself is :func:`service.audit.read_audit`.)

- :func:`served_now`: the price ``GET /v1/prices`` would serve now, for a process
  that holds no price book (the CLI builds a one-SKU book from Redis);
- :func:`explain_price`: that price and why (surface cell, elasticity, intensity,
  units and time left, the guardrail that bound it);
- :func:`preview_price`: the surface and expected outcome under candidate changes
  (:class:`PreviewIn`), nothing published;
- :func:`decide_approval`: approve or reject held price changes in the name of a
  person (``decided_by`` is that person, never a key).

Example:
    >>> view = served_now(store, bundle, "CMX-VAR-001", None)  # doctest: +SKIP
    >>> explain_price(store, bundle, view)["bound_by"]  # doctest: +SKIP
    'ceiling'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from pricing.fields import AS_WHOLE_NUMBER, IDENTIFIER_PATTERN
from service.config.models import ConfigBundle, Guardrails

__all__ = [
    "CategoryPriorIn",
    "PreviewIn",
    "PreviewInvalid",
    "decide_approval",
    "explain_price",
    "intensity_now",
    "preview_price",
    "served_now",
]

log = logging.getLogger("dropprice.operator")


class PreviewInvalid(ValueError):
    """The candidate changes are inconsistent; ``issues`` are ``(field path, message)``."""

    def __init__(self, issues: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in issues))
        self.issues = list(issues)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryPriorIn(_In):
    mean: float = Field(le=0, ge=-20, strict=True, description="Prior mean elasticity.")
    sd: float = Field(gt=0, le=20, strict=True, description="Prior standard deviation.")


class PreviewIn(_In):
    """Candidate changes for one SKU; every field is optional."""

    market: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN, max_length=64)
    guardrails: Guardrails | None = Field(
        default=None, description="Guardrail fields to override for this SKU (e.g. a new floor)."
    )
    elasticity: float | None = Field(
        default=None,
        ge=-20,
        le=0,
        strict=True,
        description="Use this elasticity instead of the fitted one.",
    )
    category_prior: CategoryPriorIn | None = Field(
        default=None, description="A new prior for the SKU's category (folded into the fit)."
    )
    list_price: float | None = Field(default=None, gt=0, le=1_000_000, strict=True)
    unit_cost: float | None = Field(default=None, ge=0, le=1_000_000, strict=True)
    salvage_value: float | None = Field(default=None, ge=0, le=1_000_000, strict=True)
    units_left: Annotated[int, Field(ge=0, le=100_000, strict=True), AS_WHOLE_NUMBER] | None = (
        Field(default=None, description="Units left to assume (default: now).")
    )
    at: datetime | None = Field(default=None, description="Preview as of this time (default now).")


def served_now(store: Any, bundle: ConfigBundle, sku: str, market: str | None) -> Any:
    """The :class:`~service.pricebook.PriceView` a price read would answer now.

    Built from Redis the way the service's book is (the config's catalog, the live
    surfaces, the units left), for one SKU.

    Raises:
        UnknownSku, UnknownMarket: as a price read would.
    """
    from service.pricebook import PriceBook, catalog_from_config

    book = PriceBook()
    book.set_catalog(catalog_from_config(bundle))
    entry, market = book.resolve_market(sku, market)
    units = store.get_inventory(sku, market)
    if units is not None:
        book.set_units(sku, market, int(units))
    book.set_surfaces(sku, store.live_surfaces(sku))
    book.stale = False  # read from Redis just now
    return book.price(sku, market)


def intensity_now(store: Any, sku: str, market: str, window_hours: int) -> float:
    """The SKU's micro-event index in the current hour, from its recorded events.

    Computed as ``GET /v1/skus/{sku}/intensity`` computes its last hour: over the
    ``window_hours`` before the current hour plus the same span of lead-in (the
    spike term's trailing baseline reads the hours before).
    """
    import pandas as pd

    from pricing.intensity import EVENT_TYPES, build_intensity_index
    from service.codec import events_frame, split_poisoned

    end = pd.Timestamp(datetime.now(UTC)).floor("h")
    start = end - pd.Timedelta(hours=window_hours - 1)
    since = start.to_pydatetime() - timedelta(hours=window_hours)
    usable, _ = split_poisoned(store.recent_events(sku, since=since))
    frame = events_frame(usable)
    frame = frame[(frame["market"] == market) & frame["type"].isin(EVENT_TYPES)]
    if not len(frame):
        return 0.0
    index = build_intensity_index(frame, window_hours=window_hours, start=start, end=end)
    mine = index[(index["sku"] == sku) & (index["market"] == market)]
    now = mine[mine["hour"] == end]
    return float(now["intensity"].iloc[-1]) if len(now) else 0.0


def explain_price(
    store: Any, bundle: ConfigBundle, view: Any, *, observed: bool = True
) -> dict[str, Any]:
    """The served price ``view`` and why (:func:`service.config.whatif.explain`).

    Args:
        view: the :class:`~service.pricebook.PriceView` served (from the service's
            book, or :func:`served_now`).
        observed: read the intensity now from the events (else the surface's forecast).

    Raises:
        UnknownSku, UnknownMarket, NoLiveSurface: see
            :func:`service.config.whatif.load_live_row`.
    """
    from service.config.whatif import explain, load_live_row

    served = {k: v for k, v in view.as_dict().items() if k not in ("quote_id", "expires_at")}
    row = load_live_row(store, bundle, view.sku, view.market, units_left=view.inventory)
    intensity: float | None = None
    if observed:
        try:
            intensity = intensity_now(
                store, view.sku, view.market, bundle.defaults.intensity_window_hours
            )
        except Exception as exc:  # explain still answers from the surface's own forecast
            log.warning("intensity unavailable for explain", extra={"error": str(exc)})
    return explain(row, bundle, served, observed_intensity=intensity)


def preview_price(
    store: Any, bundle: ConfigBundle, sku: str, body: PreviewIn, *, now: datetime | None = None
) -> dict[str, Any]:
    """Re-solve the SKU's surface with ``body``'s changes; nothing is published.

    Raises:
        UnknownSku, UnknownMarket, NoLiveSurface: see ``load_live_row``.
        PreviewInvalid: the changed guardrails conflict with the SKU's live ones.
        ValueError: the changes cannot be solved (the message says why).
    """
    from service.config.checks import merge_problems
    from service.config.whatif import PreviewChanges, load_live_row, preview
    from service.config.yamlio import format_path

    row = load_live_row(store, bundle, sku, body.market)
    if body.guardrails is not None:
        _, problems = merge_problems(row.rails, body.guardrails, (), "the SKU's live guardrails")
        if problems:
            raise PreviewInvalid([(format_path(p), m) for p, m in problems])
    changes = PreviewChanges(
        guardrails=body.guardrails,
        elasticity=body.elasticity,
        category_prior=(body.category_prior.mean, body.category_prior.sd)
        if body.category_prior is not None
        else None,
        list_price=body.list_price,
        unit_cost=body.unit_cost,
        salvage_value=body.salvage_value,
        units_left=body.units_left,
    )
    return preview(row, bundle, changes, now=body.at or now or datetime.now(UTC))


def decide_approval(
    store: Any,
    bundle: ConfigBundle,
    approval_id: str,
    *,
    approve: bool,
    person: str,
    note: str = "",
    skus: Sequence[str] | None = None,
    owner: str,
) -> Any:
    """Approve (publish as a new version) or reject held price changes as ``person``.

    Args:
        person: who decides; recorded as the approval's ``decided_by`` and in the audit.
        owner: the process deciding (``cli:<user>``, ``api:<key id>``), for the lock.

    Raises:
        ValueError: ``person`` is empty.
        ApprovalNotFound: no pending approval has that id.
        RefitLocked: a re-fit is running.
    """
    from service.refit import Refitter

    name = person.strip()
    if not name:
        raise ValueError("name the person deciding (--as NAME, or the X-Actor header)")
    refitter = Refitter(store, bundle, owner=owner)
    return refitter.decide(approval_id, approve=approve, decided_by=name, note=note, skus=skus)
