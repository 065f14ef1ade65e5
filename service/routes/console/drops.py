"""``GET /v1/console/drops/{drop_id}``: the drop as its author wrote it, ready to edit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from service.deps import OperatorCaller, RuntimeDep
from service.exceptions import StoreUnavailable
from service.routes.params import IdentifierPath
from service.schemas import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["console"])


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
    drop_id: IdentifierPath,
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
        version = ConfigStore(runtime.store).live_version()
    except StoreUnavailable:
        version = None
    return AuthoredDropOut(
        config_version=version,
        drop=found.model_dump(mode="json", exclude_unset=True),
    )
