"""Kept surface versions, and rolling back to one (``admin``, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from service.auth import Caller
from service.deps import OperatorCaller, RuntimeDep
from service.exceptions import PublishSuperseded
from service.schemas import ErrorBody
from service.settings import Role

__all__ = ["router"]

router = APIRouter(tags=["console"])


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
        store,
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
