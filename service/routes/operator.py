"""Operator endpoints: live config, drop edits, audit log, explain and preview.

=======================================  ====================================================
endpoint                                 what it does (role ``operator`` or higher)
=======================================  ====================================================
``GET /v1/config``                       the live config (version, digest, who, when, bundle)
``GET /v1/config/versions``              kept config versions, newest first
``PUT /v1/drops/{drop_id}``              add or replace one drop (JSON or YAML body); 422
                                         lists every problem with its field path (and line,
                                         for YAML); 409 when ``expect_version`` is stale
``DELETE /v1/drops/{drop_id}``           remove a drop (a new config version)
``GET /v1/audit``                        append-only log: config changes, publishes,
                                         rollbacks, approvals (``since``, ``kind``, ``limit``)
``GET /v1/skus/{sku}/explain``           the served price and why (elasticity and interval,
                                         intensity, units and time left, optimum, guardrail)
``POST /v1/skus/{sku}/preview``          surface and expected revenue / sell-through under
                                         candidate changes, without publishing
=======================================  ====================================================

Hot reload: this router carries a lifespan (merged into the app's by
``include_router``) that starts a :class:`~service.config.live.LiveConfig` watcher
on its own Redis connection. Every config version applied anywhere (``dropprice
config apply``, ``PUT /v1/drops``, another process) is handed to
``ServiceRuntime.apply_config`` within a pub/sub round trip (or the poll interval
if a message was lost), so every process serves it without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.audit import SINCE_PATTERN, checked_since, read_audit
from service.auth import Caller
from service.config.checks import bundle_problems
from service.config.live import LiveConfig
from service.config.loader import ConfigIssue, parse_drop
from service.config.models import ConfigBundle
from service.config.whatif import NoLiveSurface
from service.config.yamlio import format_path
from service.deps import BookDep, OperatorCaller, RuntimeDep
from service.exceptions import ConfigConflict, ConfigError, UnknownMarket, UnknownSku
from service.operator_tools import PreviewIn, PreviewInvalid, explain_price, preview_price
from service.routes.operator_models import ExplainOut, PreviewOut
from service.routes.params import IdentifierPath, MarketQuery, SkuPath
from service.schemas import ErrorBody

__all__ = ["PreviewIn", "router"]

log = logging.getLogger("dropprice.operator")

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MAX_DROP_BODY = 4 * 1024 * 1024


@asynccontextmanager
async def config_watch(app: FastAPI) -> AsyncIterator[None]:
    """Run a :class:`LiveConfig` watcher that feeds new versions to the runtime."""
    from service.store import connect

    runtime = app.state.service
    settings = runtime.settings
    client = connect(settings.redis_url, timeout=5.0, cluster=settings.redis_cluster)
    live = LiveConfig(
        client, fallback=runtime.config, poll_seconds=max(0.5, settings.resync_interval_s)
    )

    def serve(bundle: ConfigBundle, version: int | None) -> None:
        runtime.apply_config(bundle)
        # apply_config's resync waited for any resync already in flight, which may have
        # merged a catalog read before this version withdrew SKUs (merge only adds):
        # set the config's catalog once more so a withdrawn SKU is not served again.
        from service.pricebook import catalog_from_config

        runtime.book.set_catalog(catalog_from_config(bundle))

    live.on_change(serve)
    live.start()
    app.state.live_config = live
    try:
        yield
    finally:
        live.stop()
        del app.state.live_config
        client.close()


router = APIRouter(tags=["operator"], lifespan=config_watch)


def _live(request: Request) -> LiveConfig:
    live: LiveConfig = request.app.state.live_config
    return live


def _actor(caller: Caller, name: str | None) -> str:
    who = f"{caller.role.value}:{caller.key_id}"
    return f"{name.strip()} ({who})" if name and name.strip() else who


def _invalid(issues: list[ConfigIssue]) -> HTTPException:
    return HTTPException(
        422,
        detail={
            "error": "invalid_config",
            "detail": [
                {
                    "field": i.path or "body",
                    "message": i.message,
                    "line": i.line,
                    "text": str(i),
                }
                for i in issues
            ],
        },
    )


def _not_found(exc: Exception, code: str) -> HTTPException:
    return HTTPException(404, detail={"error": code, "detail": str(exc)})


# -- schemas ---------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigOut(BaseModel):
    """The live operator config."""

    version: int | None = Field(description="Live config version; null: the startup files.")
    source: str = Field(description="'redis' (an applied version) or 'files' (startup configs).")
    digest: str | None = None
    actor: str | None = None
    applied_at: datetime | None = None
    config: dict[str, Any] = Field(description="The whole bundle (defaults, categories, drops).")


class ConfigVersionOut(BaseModel):
    version: int
    kind: str
    actor: str
    at: datetime
    base: int
    digest: str
    summary: str
    live: bool


class AppliedOut(BaseModel):
    """Outcome of a config change."""

    version: int = Field(description="The live config version afterwards.")
    changed: bool
    changes: list[str] = Field(description="One line per changed field: '~ path: old -> new'.")
    audit_id: str | None = None


class AuditOut(BaseModel):
    id: str
    kind: str
    actor: str
    at: datetime
    detail: dict[str, Any]


class AuditPage(BaseModel):
    records: list[AuditOut]
    next_since: str | None = Field(description="Pass as ?since= to read the records after these.")


# -- config ------------------------------------------------------------------------------


@router.get("/v1/config", response_model=ConfigOut, summary="The live operator config")
def get_config(request: Request, caller: OperatorCaller) -> ConfigOut:
    """The config the service serves now, with its version and who applied it."""
    live = _live(request)
    if live.version is not None:
        got = live.store.get(live.version)
        if got is not None:
            return ConfigOut(
                version=got.version,
                source="redis",
                digest=got.digest,
                actor=got.actor,
                applied_at=got.at,
                config=got.bundle.model_dump(mode="json"),
            )
    return ConfigOut(version=None, source="files", config=live.bundle.model_dump(mode="json"))


@router.get(
    "/v1/config/versions",
    response_model=list[ConfigVersionOut],
    summary="Kept config versions, newest first",
)
def get_config_versions(request: Request, caller: OperatorCaller) -> list[ConfigVersionOut]:
    live = _live(request)
    live_num = live.store.live_version()
    return [
        ConfigVersionOut(
            version=v.version,
            kind=v.kind,
            actor=v.actor,
            at=v.at,
            base=v.base,
            digest=v.digest,
            summary=v.summary,
            live=v.version == live_num,
        )
        for v in live.store.list_versions()
    ]


def _apply(
    live: LiveConfig,
    bundle: ConfigBundle,
    *,
    actor: str,
    expect_version: int | None,
    note: str | None,
) -> AppliedOut:
    base = live.version if live.version is not None else 0
    try:
        result = live.store.apply(
            bundle,
            actor=actor,
            expect_version=expect_version if expect_version is not None else base,
            note=note,
            served=live.bundle if live.version is None else None,
        )
    except ConfigConflict as exc:
        raise HTTPException(409, detail={"error": "config_conflict", "detail": str(exc)}) from exc
    except ConfigError as exc:
        raise _invalid([i for i in exc.issues if isinstance(i, ConfigIssue)]) from exc
    live.refresh()  # this process serves it before answering; others follow by pub/sub
    return AppliedOut(
        version=result.version,
        changed=result.changed,
        changes=[str(c) for c in result.changes],
        audit_id=result.audit_id,
    )


@router.put(
    "/v1/drops/{drop_id}",
    response_model=AppliedOut,
    responses={
        409: {"model": ErrorBody, "description": "The live config changed (expect_version)."},
        422: {"model": ErrorBody, "description": "Every problem, with field path (and line)."},
    },
    summary="Add or replace one drop",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "$ref": "#/components/schemas/DropConfig",
                        "description": "One drop, as in configs/drops/*.yaml (also "
                        "`dropprice config schema drop`); checked against the live config "
                        "(categories, markets, guardrails) and the path's id: 422 "
                        "invalid_config lists every problem.",
                    }
                },
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def put_drop(
    request: Request,
    drop_id: IdentifierPath,
    caller: OperatorCaller,
    expect_version: Annotated[
        int | None, Query(ge=0, description="Refuse (409) unless this config version is live.")
    ] = None,
    note: Annotated[str | None, Query(max_length=500)] = None,
    x_actor: Annotated[str | None, Header(max_length=100)] = None,
) -> AppliedOut:
    """Validate the drop against the live config and apply it as a new config version.

    The body is the drop as JSON, or as YAML with ``Content-Type: application/yaml``
    (then each problem also carries its line). The drop's ``id`` must equal
    ``drop_id``.
    """
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    if len(body) > MAX_DROP_BODY:
        raise HTTPException(
            413,
            detail={
                "error": "too_large",
                "detail": f"drop body is {len(body)} bytes, allowed {MAX_DROP_BODY}",
            },
        )
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    file = f"drops/{drop_id}.yaml" if content_type in _YAML_TYPES else None
    if content_type in _YAML_TYPES:
        drop, issues, lines = parse_drop(body, file=file)
    else:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _invalid([ConfigIssue(None, None, "", f"body is not valid JSON: {exc}")]) from exc
        if not isinstance(data, dict):
            raise _invalid(
                [ConfigIssue(None, None, "", f"expected a JSON object, got {type(data).__name__}")]
            )
        drop, issues, lines = parse_drop(data)
    if drop is None:
        raise _invalid(issues)
    if drop.id != drop_id:
        raise _invalid(
            [
                ConfigIssue(
                    file,
                    lines.line_of(("id",)),
                    "id",
                    f"drop id {drop.id!r} does not match the URL's {drop_id!r}",
                )
            ]
        )
    live = _live(request)

    def work() -> AppliedOut:
        bundle = live.bundle.with_drops([drop])
        problems = [p for p in bundle_problems(bundle) if p.part == f"drop:{drop_id}"]
        if problems:
            raise _invalid(
                [
                    ConfigIssue(file, lines.line_of(p.path), format_path(p.path), p.message)
                    for p in problems
                ]
            )
        return _apply(
            live,
            bundle,
            actor=_actor(caller, x_actor),
            expect_version=expect_version,
            note=note,
        )

    return await run_in_threadpool(work)


@router.delete(
    "/v1/drops/{drop_id}",
    response_model=AppliedOut,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Remove a drop",
)
def delete_drop(
    request: Request,
    drop_id: IdentifierPath,
    caller: OperatorCaller,
    expect_version: Annotated[int | None, Query(ge=0)] = None,
    note: Annotated[str | None, Query(max_length=500)] = None,
    x_actor: Annotated[str | None, Header(max_length=100)] = None,
) -> AppliedOut:
    """Remove a drop from the live config (its SKUs stop being served after the reload)."""
    live = _live(request)
    if live.bundle.drop(drop_id) is None:
        raise HTTPException(
            404,
            detail={
                "error": "unknown_drop",
                "detail": f"no drop {drop_id!r}, allowed {[d.id for d in live.bundle.drops]}",
            },
        )
    bundle = live.bundle.with_drops([], remove=[drop_id])
    return _apply(
        live, bundle, actor=_actor(caller, x_actor), expect_version=expect_version, note=note
    )


# -- audit -------------------------------------------------------------------------------


@router.get(
    "/v1/audit",
    response_model=AuditPage,
    responses={422: {"model": ErrorBody}},
    summary="Audit log: config changes, publishes, rollbacks, approvals",
)
def get_audit(
    request: Request,
    caller: OperatorCaller,
    since: Annotated[
        str | None,
        AfterValidator(checked_since),
        Query(
            max_length=64,
            json_schema_extra={"pattern": SINCE_PATTERN},
            description="ISO 8601 time with zone, epoch ms, or an audit id (records after it).",
        ),
    ] = None,
    kind: Annotated[
        str | None, Query(max_length=64, description="'config' matches config.apply, ...")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Records oldest first; page with ``next_since``."""
    live = _live(request)
    try:
        records = read_audit(live.store.prices, since=since, kind=kind, limit=limit)
    except ValueError as exc:
        raise HTTPException(
            422,
            detail={
                "error": "invalid_request",
                "detail": [{"field": "since", "message": str(exc), "got": since}],
            },
        ) from exc
    return AuditPage(
        records=[AuditOut(**r._asdict()) for r in records],
        next_since=records[-1].id if records else since,
    )


# -- explain and preview ---------------------------------------------------------------------


def _surface_errors(exc: Exception) -> HTTPException:
    """404 for an unknown SKU or market, 409 before any publish."""
    if isinstance(exc, UnknownSku):
        return _not_found(exc, "unknown_sku")
    if isinstance(exc, UnknownMarket):
        return _not_found(exc, "unknown_market")
    return HTTPException(409, detail={"error": "no_surface", "detail": str(exc)})


@router.get(
    "/v1/skus/{sku}/explain",
    response_model=ExplainOut,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="The served price of a SKU and why",
)
def get_explain(
    request: Request,
    sku: SkuPath,
    caller: OperatorCaller,
    runtime: RuntimeDep,
    book: BookDep,
    market: MarketQuery = None,
) -> dict[str, Any]:
    """Served price (as ``GET /v1/prices`` answers it now), the surface cell it came from,
    the elasticity with its 95 % interval, intensity now, units and time left, the
    unconstrained optimum, and which guardrail bound it (409 before any publish)."""
    try:
        view = book.price(sku, market)
    except UnknownSku as exc:
        raise _not_found(exc, "unknown_sku") from exc
    except UnknownMarket as exc:
        raise _not_found(exc, "unknown_market") from exc
    try:
        return explain_price(runtime.store, _live(request).bundle, view)
    except (UnknownSku, UnknownMarket, NoLiveSurface) as exc:
        raise _surface_errors(exc) from exc


@router.post(
    "/v1/skus/{sku}/preview",
    response_model=PreviewOut,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="What-if: the surface and expected outcome under candidate changes",
)
def post_preview(
    request: Request,
    sku: SkuPath,
    body: PreviewIn,
    caller: OperatorCaller,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Re-solve the SKU's surface with the changes (nothing is published): the live
    surface and the candidate, each with expected revenue and sell-through from now."""
    try:
        return preview_price(runtime.store, _live(request).bundle, sku, body)
    except (UnknownSku, UnknownMarket, NoLiveSurface) as exc:
        raise _surface_errors(exc) from exc
    except PreviewInvalid as exc:
        raise _invalid([ConfigIssue(None, None, path, msg) for path, msg in exc.issues]) from exc
    except ValueError as exc:
        raise HTTPException(
            422,
            detail={"error": "invalid_request", "detail": [{"field": "body", "message": str(exc)}]},
        ) from exc
