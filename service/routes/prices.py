"""``GET /v1/prices/{sku}`` and ``POST /v1/prices:batch``.

The single read is normally answered by :class:`service.middleware.PriceFastPath`
before it reaches this route; the route serves the same body for the cases the
fast path hands over (errors, unusual queries) and documents the contract.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from service.deps import BookDep, MetricsDep, PosCaller
from service.exceptions import UnknownMarket, UnknownSku
from service.schemas import ErrorBody, PriceBatchIn, PriceBatchOut, PriceError, PriceOut

__all__ = ["router"]

router = APIRouter(tags=["prices"])

_IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


@router.get(
    "/v1/prices/{sku}",
    response_model=PriceOut,
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "Unknown SKU or market."},
        422: {"model": ErrorBody},
    },
    summary="Price of a SKU now",
)
def get_price(
    sku: Annotated[str, Path(min_length=1, max_length=64, pattern=_IDENT)],
    caller: PosCaller,
    book: BookDep,
    metrics: MetricsDep,
    market: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=_IDENT,
            description="Market; optional when the SKU is sold in one market only.",
        ),
    ] = None,
) -> PriceOut:
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
    return PriceOut(**view.as_dict())


@router.post(
    "/v1/prices:batch",
    response_model=PriceBatchOut,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Prices of up to 500 SKUs",
)
def post_price_batch(
    body: PriceBatchIn, caller: PosCaller, book: BookDep, metrics: MetricsDep
) -> PriceBatchOut:
    """Prices in request order; an unknown SKU or market is reported in its item."""
    out: list[PriceOut | PriceError] = []
    for item in body.items:
        try:
            view = book.price(item.sku, item.market)
        except UnknownSku as exc:
            out.append(
                PriceError(sku=item.sku, market=item.market, error="unknown_sku", detail=str(exc))
            )
            continue
        except UnknownMarket as exc:
            out.append(
                PriceError(
                    sku=item.sku, market=item.market, error="unknown_market", detail=str(exc)
                )
            )
            continue
        metrics.source_children[view.source].inc()
        out.append(PriceOut(**view.as_dict()))
    return PriceBatchOut(prices=out)
