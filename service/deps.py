"""FastAPI dependencies: the process's resources and the caller's role.

Routes declare what they need with ``Annotated`` aliases::

    @router.get("/v1/things")
    def things(store: StoreDep, caller: OperatorCaller) -> ...

``PosCaller``, ``OperatorCaller`` and ``AdminCaller`` check the ``X-API-Key``
header (401 when missing or unknown, 403 when the role is too low); the role
hierarchy is pos < operator < admin.

Every dependency here is a coroutine: FastAPI runs a plain ``def`` dependency in its
thread pool, which would cost each request a thread hand-off for a dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from service.auth import Caller
from service.config.models import ConfigBundle
from service.limits import check_query
from service.metrics import Metrics
from service.pricebook import PriceBook
from service.runtime import ServiceRuntime
from service.settings import Role, Settings
from service.store import PriceStore

__all__ = [
    "AdminCaller",
    "BookDep",
    "ConfigDep",
    "MetricsDep",
    "OperatorCaller",
    "PosCaller",
    "RuntimeDep",
    "SettingsDep",
    "StoreDep",
    "api_key_header",
    "require_role",
]

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="API key; roles pos < operator < admin.",
)


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.service
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


async def get_store(runtime: RuntimeDep) -> PriceStore:
    return runtime.store


async def get_book(runtime: RuntimeDep) -> PriceBook:
    return runtime.book


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_config(runtime: RuntimeDep) -> ConfigBundle:
    return runtime.config


async def get_metrics(runtime: RuntimeDep) -> Metrics:
    return runtime.metrics


StoreDep = Annotated[PriceStore, Depends(get_store)]
BookDep = Annotated[PriceBook, Depends(get_book)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ConfigDep = Annotated[ConfigBundle, Depends(get_config)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def require_role(role: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers whose key grants ``role`` or a higher one."""

    async def check(
        request: Request,
        runtime: RuntimeDep,
        api_key: Annotated[str | None, Depends(api_key_header)],
    ) -> Caller:
        caller = runtime.keys.caller(api_key)
        if caller is None:
            raise HTTPException(
                status_code=401,
                detail={
                    "error": "unauthorized",
                    "detail": "missing or unknown X-API-Key header"
                    if api_key
                    else "missing X-API-Key header",
                },
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if not caller.role.allows(role):
            raise HTTPException(
                status_code=403,
                detail={
                    "error": "forbidden",
                    "detail": f"this endpoint needs role {role.value!r} or higher; "
                    f"the key presented has role {caller.role.value!r}",
                },
            )
        request.state.caller = caller
        check_query(request)  # after the key: no key, no word about the query
        return caller

    return check


PosCaller = Annotated[Caller, Depends(require_role(Role.pos))]
OperatorCaller = Annotated[Caller, Depends(require_role(Role.operator))]
AdminCaller = Annotated[Caller, Depends(require_role(Role.admin))]
