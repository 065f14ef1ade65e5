"""The console page, its packaged assets, and who is signed in."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from service.auth import Caller
from service.deps import RuntimeDep, api_key_header
from service.schemas import ErrorBody
from service.settings import Role

__all__ = ["router"]

router = APIRouter(tags=["console"])


_ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
# The page loads nothing from elsewhere: no CDN, no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


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
