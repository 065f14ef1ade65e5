"""``GET /v1/prices/{sku}`` and ``POST /v1/prices:batch``.

The single read is normally answered by :class:`service.middleware.PriceFastPath`
before it reaches this route; the route serves the same body for the cases the
fast path hands over (errors, unusual queries) and documents the contract.

Both handlers and their dependencies are coroutines that read the in-process price
book only: no thread hand-off and no Redis call. The batch body is parsed with orjson
and validated as strictly as any other (:class:`~service.schemas.PriceBatchIn`).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from service.deps import BookDep, MetricsDep, PosCaller
from service.exceptions import UnknownMarket, UnknownSku
from service.routes.params import MarketQuery, SkuPath
from service.schemas import ErrorBody, PriceBatchIn, PriceBatchOut, PriceOut

__all__ = ["router"]

router = APIRouter(tags=["prices"])


@router.get(
    "/v1/prices/{sku}",
    response_model=PriceOut,
    responses={404: {"model": ErrorBody, "description": "Unknown SKU or market."}},
    summary="Price of a SKU now",
)
async def get_price(
    sku: SkuPath,
    caller: PosCaller,
    book: BookDep,
    metrics: MetricsDep,
    market: MarketQuery = None,
) -> Response:
    """The published surface at (units left now, period now), guardrails applied;
    the list price before any surface (``source: base``); the last surfaces held
    while Redis is unreachable (``source: stale``). The ``quote_id`` locks the
    price for a sale that carries it until ``expires_at``."""
    try:
        view = book.price(sku, market)
    except UnknownSku as exc:
        raise HTTPException(404, detail={"error": "unknown_sku", "detail": str(exc)}) from exc
    except UnknownMarket as exc:
        raise HTTPException(404, detail={"error": "unknown_market", "detail": str(exc)}) from exc
    metrics.source_children[view.source].inc()
    return Response(orjson.dumps(view.as_dict()), media_type="application/json")


@router.post(
    "/v1/prices:batch",
    response_model=PriceBatchOut,
    summary="Prices of up to 500 SKUs",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PriceBatchIn"}}
            },
        }
    },
)
async def post_price_batch(
    request: Request, caller: PosCaller, book: BookDep, metrics: MetricsDep
) -> Response:
    """Prices in request order; an unknown SKU or market is reported in its item."""
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            422, detail={"error": "invalid_json", "detail": f"body is not valid JSON: {exc}"}
        ) from exc
    body = PriceBatchIn.model_validate(payload)  # a ValidationError is the 422 naming fields
    out: list[dict[str, Any]] = []
    for item in body.items:
        try:
            view = book.price(item.sku, item.market)
        except (UnknownSku, UnknownMarket) as exc:
            code = "unknown_sku" if isinstance(exc, UnknownSku) else "unknown_market"
            out.append({"sku": item.sku, "market": item.market, "error": code, "detail": str(exc)})
            continue
        metrics.source_children[view.source].inc()
        out.append(view.as_dict())
    return Response(orjson.dumps({"prices": out}), media_type="application/json")
