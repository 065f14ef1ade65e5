"""The operator console: a browser page at ``/console`` and the few JSON routes it needs.

The page itself is plain HTML, CSS and JavaScript packaged with the service
(``service/static/console/``, no CDN, no framework). It signs in with an
``operator`` or ``admin`` key (kept in the tab's ``sessionStorage``, sent as
``X-API-Key`` like every other client) and otherwise reuses the existing routes:
explain, preview, ``PUT /v1/drops``, approvals, audit, intensity.

=========================================  ==================================================
endpoint                                   what it answers (role ``operator`` or higher)
=========================================  ==================================================
``GET /console``                           the page (and its assets under ``/console/``)
``GET /v1/console/session``                the caller's role; a ``pos`` key gets a 403 that
                                           says which key the console needs
``GET /v1/console/board``                  drops with their window, and one row per
                                           SKU-market: price now and source, units left,
                                           starting stock, sell-through, binding guardrail,
                                           elasticity with its interval, intensity; sorted,
                                           filtered and paged on the server
``GET /v1/console/skus/{sku}``             the live surface (prices and guardrail codes) with
                                           the cell served now, and the SKU's timeline:
                                           sales with their charged price, units left after
                                           each, announcements, claims, listing changes
``GET /v1/console/drops/{drop_id}``        the drop as its author wrote it (only the fields
                                           set), ready to edit and ``PUT`` back
``GET /v1/console/versions``               kept surface versions with their fit summary
``POST /v1/console/rollback``              ``confirm: false`` says what a rollback would
                                           restore; ``confirm: true`` does it (role
                                           ``admin``), audited under the ``X-Actor`` name
=========================================  ==================================================

The board reads only the process's own price book (no Redis call per row) and
never records a look-up in the served-price log: watching the console does not
count as a shopper's price read in an experiment's conversion.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pricing.guardrails import GUARDRAIL_FIELDS, bound_by
from service.auth import Caller
from service.deps import OperatorCaller, RuntimeDep, api_key_header
from service.exceptions import PublishSuperseded, StoreUnavailable, UnknownMarket, UnknownSku
from service.runtime import ServiceRuntime
from service.schemas import ErrorBody
from service.settings import Role

__all__ = ["router"]

router = APIRouter(tags=["console"])

_IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
# The page loads nothing from elsewhere: no CDN, no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_SORTS = (
    "sku",
    "drop",
    "market",
    "price",
    "units_left",
    "sell_through",
    "bound_by",
    "elasticity",
    "intensity",
)
_INTENSITY_PER_BOARD = 4
"""Stale intensity indices recomputed per board read (the rest show their last value)."""


def _asset(name: str) -> bytes:
    return resources.files("service").joinpath("static", "console", name).read_bytes()


# -- page ------------------------------------------------------------------------------------


@router.get("/console", include_in_schema=False)
def console_page() -> HTMLResponse:
    """The console page (signs in with an operator or admin key)."""
    return HTMLResponse(
        _asset("index.html"),
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/console/{asset}", include_in_schema=False)
def console_asset(asset: str) -> Response:
    if asset not in _ASSETS:
        raise HTTPException(404, detail={"error": "not_found", "detail": f"no asset {asset!r}"})
    return Response(_asset(asset), media_type=_ASSETS[asset], headers={"Cache-Control": "no-cache"})


# -- session ---------------------------------------------------------------------------------


class SessionOut(BaseModel):
    role: str
    key_id: str
    can_rollback: bool = Field(description="Rollbacks need an admin key.")


def _console_caller(
    runtime: RuntimeDep, api_key: Annotated[str | None, Depends(api_key_header)]
) -> Caller:
    caller = runtime.keys.caller(api_key)
    if caller is None:
        raise HTTPException(
            401,
            detail={
                "error": "unauthorized",
                "detail": "unknown key: paste an operator or admin key",
            },
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not caller.role.allows(Role.operator):
        raise HTTPException(
            403,
            detail={
                "error": "forbidden",
                "detail": f"this is a {caller.role.value} key, for terminals (prices and sales); "
                "the console needs an operator or admin key "
                "(dropprice api-key new --role operator)",
            },
        )
    return caller


@router.get(
    "/v1/console/session",
    response_model=SessionOut,
    responses={403: {"model": ErrorBody, "description": "A pos key: the console needs more."}},
    summary="Who the console key is",
)
def get_session(caller: Annotated[Caller, Depends(_console_caller)]) -> SessionOut:
    return SessionOut(
        role=caller.role.value,
        key_id=caller.key_id,
        can_rollback=caller.role.allows(Role.admin),
    )


# -- board -----------------------------------------------------------------------------------


class WindowOut(BaseModel):
    state: Literal["open", "next", "closed"]
    start: datetime | None
    end: datetime | None
    seconds_left: float | None = Field(
        description="Open: until it closes; next: until it opens; closed: null."
    )


class DropOut(BaseModel):
    id: str
    name: str
    markets: list[str]
    skus: int
    window: WindowOut


class BoardRowOut(BaseModel):
    sku: str
    name: str
    drop: str
    market: str
    price: float
    currency: str
    source: str = Field(description="surface, base (list price, no re-fit yet) or stale.")
    version: str | None
    units_left: int | None
    start_stock: int | None
    sell_through: float | None = Field(description="(start - left) / start.")
    bound_by: str | None = Field(description="The guardrail that bound the cell served now.")
    elasticity: float | None
    interval95: list[float] | None
    intensity: float | None
    intensity_source: str | None = Field(
        description="'events' (the analysts' index, GET /v1/skus/{sku}/intensity) or "
        "'at_publish' (the value the surface was solved at)."
    )


class BoardOut(BaseModel):
    generated_at: datetime
    live_version: str | None
    stale: bool
    drops: list[DropOut]
    rows: list[BoardRowOut]
    total: int = Field(description="Rows matching the filter, before paging.")
    offset: int
    limit: int


def _window(drop: Any, now: datetime) -> WindowOut:
    open_ = drop.window_at(now)
    if open_ is not None:
        return WindowOut(
            state="open",
            start=open_.start,
            end=open_.end,
            seconds_left=(open_.end - now).total_seconds(),
        )
    nxt = drop.next_window(now)
    if nxt is not None:
        return WindowOut(
            state="next",
            start=nxt.start,
            end=nxt.end,
            seconds_left=(nxt.start - now).total_seconds(),
        )
    last = drop.windows[-1]
    return WindowOut(state="closed", start=last.start, end=last.end, seconds_left=None)


def _intensity(
    runtime: ServiceRuntime, caller: Caller, sku: str, market: str, budget: list[int]
) -> float | None:
    """The analysts' index now, from the route's cache (recomputed within ``budget``)."""
    cached = runtime.intensity_cache.get((sku, market))
    fresh = cached is not None and time.monotonic() - cached[0] < runtime.settings.intensity_cache_s
    if not fresh and budget[0] > 0:
        budget[0] -= 1
        from service.routes.intensity import get_intensity

        try:
            return float(get_intensity(sku, caller, runtime, market).current)
        except (HTTPException, StoreUnavailable):
            pass
    return float(cached[1].current) if cached is not None else None


def _row(runtime: ServiceRuntime, sku: str, market: str, now: datetime) -> BoardRowOut:
    book = runtime.book
    entry = book.catalog[sku]
    found = runtime.config.find_sku(sku)
    name, start = "", None
    if found is not None:
        name = found[1].name
        start = found[1].inventory.get(market)
    units = book.units(sku, market)
    live = None if market in entry.fixed_markets else book.surface(sku, market)
    bound = beta = interval = intensity = None
    intensity_source = None
    if live is not None:
        version, rec = live
        rows, cols = rec.price.shape
        n = min(max(units or 0, 0), rows - 1)
        t = int((now - rec.period_start).total_seconds() // rec.period_seconds)
        t = min(max(t, 0), cols - 1)
        price = rec.price_at(units or 0, now)
        if rec.guardrail_codes is not None:
            bound = bound_by(int(rec.guardrail_codes[n, t]))
        el = dict(rec.elasticity or {})
        beta, se = el.get("beta"), el.get("beta_se")
        if beta is not None and se is not None:
            interval = [beta - 1.96 * se, beta + 1.96 * se]
        at_publish = (rec.explain or {}).get("intensity_now")
        if at_publish is not None:
            intensity, intensity_source = float(at_publish), "at_publish"
        currency = rec.currency
        source = "stale" if book.stale else "surface"
    else:
        version, price, currency = None, entry.base_price, entry.currency
        source = "stale" if book.stale else "base"
    sell = None
    if start and units is not None:
        sell = max(0.0, (start - units) / start)
    return BoardRowOut(
        sku=sku,
        name=name,
        drop=entry.drop_id,
        market=market,
        price=price,
        currency=currency,
        source=source,
        version=version,
        units_left=units,
        start_stock=start,
        sell_through=sell,
        bound_by=bound,
        elasticity=beta,
        interval95=interval,
        intensity=intensity,
        intensity_source=intensity_source,
    )


def _sort_key(field: str) -> Any:
    def key(row: BoardRowOut) -> tuple[int, Any]:
        value = getattr(row, field)
        return (1, "") if value is None else (0, value)

    return key


@router.get("/v1/console/board", response_model=BoardOut, summary="The drop board")
def get_board(
    caller: OperatorCaller,
    runtime: RuntimeDep,
    q: Annotated[
        str | None, Query(max_length=100, description="Substring of SKU, name, drop or market.")
    ] = None,
    drop: Annotated[str | None, Query(max_length=64, pattern=_IDENT)] = None,
    sort: Annotated[str, Query(pattern="^(" + "|".join(_SORTS) + ")$")] = "sku",
    desc: bool = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BoardOut:
    """Every SKU-market of the live config, from the process's own price book."""
    now = datetime.now(UTC)
    bundle = runtime.config
    rows = [_row(runtime, sku, market, now) for sku, market in runtime.book.pairs()]
    if drop:
        rows = [r for r in rows if r.drop == drop]
    if q:
        needle = q.lower()
        rows = [
            r
            for r in rows
            if needle in r.sku.lower()
            or needle in r.name.lower()
            or needle in r.drop.lower()
            or needle in r.market.lower()
        ]
    key = _sort_key(sort)
    present = sorted((r for r in rows if getattr(r, sort) is not None), key=key, reverse=desc)
    page_rows = (present + [r for r in rows if getattr(r, sort) is None])[offset : offset + limit]
    budget = [_INTENSITY_PER_BOARD]
    for r in page_rows:
        observed = _intensity(runtime, caller, r.sku, r.market, budget)
        if observed is not None:
            r.intensity, r.intensity_source = observed, "events"
    drops = [
        DropOut(
            id=d.id,
            name=d.name,
            markets=list(d.markets),
            skus=len(d.skus),
            window=_window(d, now),
        )
        for d in bundle.drops
    ]
    try:
        live_version = runtime.store.live_version()
    except StoreUnavailable:
        live_version = None
    return BoardOut(
        generated_at=now,
        live_version=live_version,
        stale=runtime.book.stale,
        drops=drops,
        rows=page_rows,
        total=len(rows),
        offset=offset,
        limit=limit,
    )


# -- SKU page --------------------------------------------------------------------------------


class SurfaceOut(BaseModel):
    version: str
    period_start: datetime
    period_seconds: int
    price: list[list[float]] = Field(description="Prices [units left][period].")
    guardrail_codes: list[list[int]] | None
    guardrail_names: dict[int, str | None]
    cell: dict[str, int] = Field(description="{units_left, period}: the cell served now.")


class SaleOut(BaseModel):
    ts: datetime
    kind: str
    quantity: int
    unit_price: float | None
    units_left: int | None = Field(description="Units left after this event.")


class SignalOut(BaseModel):
    ts: datetime
    type: str
    detail: str


class SkuOut(BaseModel):
    sku: str
    name: str
    drop: str
    market: str
    markets: list[str]
    currency: str
    list_price: float
    start_stock: int | None
    units_left: int | None
    window: WindowOut | None
    surface: SurfaceOut | None
    sales: list[SaleOut] = Field(description="Sales, returns and restocks, oldest first.")
    signals: list[SignalOut] = Field(description="Announcements, claims, listing changes.")


_STOCK_SIGN = {"sale": -1, "return": 1, "restock": 1}
_DAY = timedelta(days=1)


@router.get(
    "/v1/console/skus/{sku}",
    response_model=SkuOut,
    responses={404: {"model": ErrorBody}},
    summary="A SKU's live surface and its timeline of sales and events",
)
def get_sku(
    sku: Annotated[str, Path(min_length=1, max_length=64, pattern=_IDENT)],
    caller: OperatorCaller,
    runtime: RuntimeDep,
    market: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_IDENT)] = None,
) -> SkuOut:
    """The surface served now and the events of the current (or last) window."""
    book = runtime.book
    try:
        entry, market = book.resolve_market(sku, market)
    except UnknownSku as exc:
        raise HTTPException(404, detail={"error": "unknown_sku", "detail": str(exc)}) from exc
    except UnknownMarket as exc:
        raise HTTPException(404, detail={"error": "unknown_market", "detail": str(exc)}) from exc
    now = datetime.now(UTC)
    found = runtime.config.find_sku(sku)
    name, start_stock, window = "", None, None
    since = None
    if found is not None:
        drop_cfg, sku_cfg = found
        name, start_stock = sku_cfg.name, sku_cfg.inventory.get(market)
        window = _window(drop_cfg, now)
        # The timeline starts a day before the window shown (the lead-in the fit sees).
        if window.start is not None:
            since = min(window.start.astimezone(UTC), now) - _DAY
    units = book.units(sku, market)
    surface = None
    live = None if market in entry.fixed_markets else book.surface(sku, market)
    if live is not None:
        version, rec = live
        rows, cols = rec.price.shape
        t = int((now - rec.period_start).total_seconds() // rec.period_seconds)
        surface = SurfaceOut(
            version=version,
            period_start=rec.period_start,
            period_seconds=rec.period_seconds,
            price=rec.price.tolist(),
            guardrail_codes=rec.guardrail_codes.tolist()
            if rec.guardrail_codes is not None
            else None,
            guardrail_names=GUARDRAIL_FIELDS,
            cell={
                "units_left": min(max(units or 0, 0), rows - 1),
                "period": min(max(t, 0), cols - 1),
            },
        )
    try:
        entries = runtime.store.recent_events(sku, since=since, limit=5000)
    except StoreUnavailable:
        entries = []
    moves: list[tuple[datetime, str, int, float | None]] = []
    signals: list[SignalOut] = []
    for e in entries:
        f = e.fields
        if not isinstance(f.get("type"), str) or f.get("market") != market:
            continue
        try:
            ts = datetime.fromisoformat(str(f.get("ts") or "")).astimezone(UTC)
        except ValueError:
            ts = datetime.fromtimestamp(int(e.entry_id.split("-", 1)[0]) / 1000, UTC)
        kind = str(f["type"])
        if kind in _STOCK_SIGN:
            try:
                qty = int(str(f.get("quantity") or 0))
                price = float(str(f["unit_price"])) if f.get("unit_price") else None
            except ValueError:
                continue
            moves.append((ts, kind, qty, price))
        else:
            detail = ", ".join(
                f"{k} {f[k]}" for k in ("creator", "reach", "count", "platform") if f.get(k)
            )
            signals.append(SignalOut(ts=ts, type=kind, detail=detail))
    moves.sort(key=lambda m: m[0])
    # Units left after each move, counted back from the units left now.
    left = units
    after: list[int | None] = []
    for _, kind, qty, _ in reversed(moves):
        after.append(left)
        if left is not None:
            left -= _STOCK_SIGN[kind] * qty
    after.reverse()
    sales = [
        SaleOut(ts=ts, kind=kind, quantity=qty, unit_price=price, units_left=a)
        for (ts, kind, qty, price), a in zip(moves, after, strict=True)
    ]
    return SkuOut(
        sku=sku,
        name=name,
        drop=entry.drop_id,
        market=market,
        markets=list(entry.markets),
        currency=entry.currency,
        list_price=entry.list_price,
        start_stock=start_stock,
        units_left=units,
        window=window,
        surface=surface,
        sales=sales,
        signals=sorted(signals, key=lambda s: s.ts),
    )


# -- drops -----------------------------------------------------------------------------------


class AuthoredDropOut(BaseModel):
    config_version: int | None = Field(description="Pass as expect_version when putting it back.")
    drop: dict[str, Any] = Field(description="The drop with only the fields its author set.")


@router.get(
    "/v1/console/drops/{drop_id}",
    response_model=AuthoredDropOut,
    responses={404: {"model": ErrorBody}},
    summary="A drop as authored, to edit and PUT back",
)
def get_drop(
    drop_id: Annotated[str, Path(min_length=1, max_length=64, pattern=_IDENT)],
    caller: OperatorCaller,
    runtime: RuntimeDep,
) -> AuthoredDropOut:
    bundle = runtime.config
    found = bundle.drop(drop_id)
    if found is None:
        raise HTTPException(
            404,
            detail={
                "error": "unknown_drop",
                "detail": f"no drop {drop_id!r}, allowed {[d.id for d in bundle.drops]}",
            },
        )
    from service.config.versions import ConfigStore

    try:
        version = ConfigStore(runtime.store.client).live_version()
    except StoreUnavailable:
        version = None
    return AuthoredDropOut(
        config_version=version,
        drop=found.model_dump(mode="json", exclude_unset=True),
    )


# -- versions and rollback -------------------------------------------------------------------


class VersionOut(BaseModel):
    version: str
    live: bool
    status: str
    published_at: datetime
    surfaces: int
    refit_id: str | None
    approval_id: str | None
    approved_by: str | None
    fit: dict[str, Any]


class VersionsOut(BaseModel):
    live_version: str | None
    versions: list[VersionOut]


def _version_out(v: Any) -> VersionOut:
    meta = v.meta or {}
    return VersionOut(
        version=v.version,
        live=v.live,
        status=v.status,
        published_at=v.published_at,
        surfaces=len(v.pairs),
        refit_id=meta.get("refit_id"),
        approval_id=meta.get("approval_id"),
        approved_by=meta.get("approved_by"),
        fit=dict(meta.get("fit") or {}),
    )


@router.get("/v1/console/versions", response_model=VersionsOut, summary="Kept surface versions")
def get_versions(caller: OperatorCaller, runtime: RuntimeDep) -> VersionsOut:
    """Newest first, with each one's fit summary (as ``dropprice versions``)."""
    infos = runtime.store.list_versions()
    return VersionsOut(
        live_version=next((v.version for v in infos if v.live), None),
        versions=[_version_out(v) for v in infos],
    )


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(
        default=None, max_length=128, description="Version to serve again (default: the previous)."
    )
    confirm: bool = Field(default=False, description="False: only say what would be restored.")


class RollbackOut(BaseModel):
    done: bool
    live_before: str | None
    restores: VersionOut
    message: str


def _rollback_target(infos: list[Any], live: str | None, to: str | None) -> Any:
    if to is not None:
        found = next((v for v in infos if v.version == to), None)
        if found is None or found.status == "evicted":
            raise HTTPException(
                404,
                detail={
                    "error": "unknown_version",
                    "detail": f"no kept version {to!r}; kept: {[v.version for v in infos]}",
                },
            )
        return found
    live_info = next((v for v in infos if v.version == live), None)
    older = [
        v
        for v in infos
        if v.version != live
        and v.status not in {"evicted", "superseded", "writing"}
        and (live_info is None or v.published_at <= live_info.published_at)
    ]
    if not older:
        raise HTTPException(
            409,
            detail={
                "error": "nothing_to_restore",
                "detail": f"no older kept version to roll back to (live is {live!r})",
            },
        )
    return older[0]


@router.post(
    "/v1/console/rollback",
    response_model=RollbackOut,
    responses={
        404: {"model": ErrorBody, "description": "No such kept version."},
        409: {"model": ErrorBody, "description": "Nothing older to restore, or overtaken."},
    },
    summary="Say, then do, a rollback",
)
def post_rollback(
    body: RollbackIn,
    caller: OperatorCaller,
    runtime: RuntimeDep,
    x_actor: Annotated[str | None, Header(max_length=100)] = None,
) -> RollbackOut:
    """``confirm: false`` names the version a rollback would restore, with its fit
    summary; ``confirm: true`` (admin key) restores it and records it in the audit."""
    store = runtime.store
    infos = store.list_versions()
    live = next((v.version for v in infos if v.live), None)
    target = _version_out(_rollback_target(infos, live, body.to))
    from service.rollback import plan_rollback, rollback_whole

    plan = plan_rollback(store, target.version)
    if not body.confirm:
        return RollbackOut(
            done=False,
            live_before=live,
            restores=target,
            message=plan.refusal()
            if plan.stays
            else f"would serve {target.version} again ({target.surfaces} surfaces, published "
            f"{target.published_at:%Y-%m-%d %H:%M} UTC) instead of {live}",
        )
    _require_admin(caller)
    try:
        _, result = rollback_whole(store, target.version)  # whole, or refused naming what stays
    except (ValueError, PublishSuperseded) as exc:
        raise HTTPException(409, detail={"error": "rollback_refused", "detail": str(exc)}) from exc
    from service.audit import record_audit

    who = f"{caller.role.value}:{caller.key_id}"
    actor = f"{x_actor.strip()} ({who})" if x_actor and x_actor.strip() else who
    record_audit(
        store.client,
        "surface.rollback",
        actor,
        {"from": live, "to": result.version, "surfaces": result.surfaces, "via": "console"},
    )
    return RollbackOut(
        done=True,
        live_before=live,
        restores=target,
        message=f"live version {live} -> {result.version} ({result.surfaces} surfaces)",
    )


def _require_admin(caller: Caller) -> None:
    if not caller.role.allows(Role.admin):
        raise HTTPException(
            403,
            detail={
                "error": "forbidden",
                "detail": f"a rollback needs role 'admin'; the key presented has role "
                f"{caller.role.value!r}",
            },
        )
