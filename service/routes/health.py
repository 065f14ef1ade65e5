"""``/healthz`` (process up), ``/readyz`` (Redis reachable, configs loaded), ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import RuntimeDep
from service.exceptions import StoreUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis reachable and configs loaded",
    responses={503: {"description": "Not ready; the body says why."}},
)
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {
        "config": {
            "ok": True,
            "drops": len(runtime.config.drops),
            "skus": len(runtime.book.catalog),
        },
    }
    try:
        runtime.store.ping()
        checks["redis"] = {"ok": True}
    except StoreUnavailable as exc:
        checks["redis"] = {"ok": False, "error": str(exc)}
    checks["sync"] = {
        "ok": not runtime.book.stale,
        "last_sync": runtime.book.last_sync,
        "error": runtime.sync.last_error,
    }
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    # Dead letters are written by the re-fit in the worker process: read them from Redis.
    # So are the publish times of the surface versions this process serves.
    try:
        kept, ever = runtime.store.dead_letter_counts()
        published = {v.version: v.published_at for v in runtime.store.list_versions()}
    except StoreUnavailable:
        pass  # keep the last values; dropprice_redis_up says Redis is away
    else:
        runtime.metrics.dead_letters.set(kept)
        runtime.metrics.dead_lettered.set(ever)
        runtime.metrics.set_surface_ages(published, runtime.book.live_versions_by_sku())
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
