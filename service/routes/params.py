"""Path and query parameter types shared by the route modules.

One declaration each, built on :mod:`pricing.fields` (the identifier every edge
checks), so every route documents and enforces the same rule::

    @router.get("/v1/skus/{sku}/thing")
    async def thing(sku: SkuPath, market: MarketQuery = None) -> ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from pricing.fields import IDENTIFIER_DESCRIPTION, IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN

__all__ = ["IdentifierPath", "MarketQuery", "SkuPath"]

SkuPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        pattern=IDENTIFIER_PATTERN,
        description="SKU code. " + IDENTIFIER_DESCRIPTION,
    ),
]
"""A SKU code in the path."""

MarketQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        pattern=IDENTIFIER_PATTERN,
        description="Market; optional when the SKU is sold in one market only. "
        + IDENTIFIER_DESCRIPTION,
    ),
]
"""The ``?market=`` of a SKU (``None`` when the SKU sells in one market only)."""

IdentifierPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        pattern=IDENTIFIER_PATTERN,
        description=IDENTIFIER_DESCRIPTION,
    ),
]
"""Any other identifier in the path (a drop id)."""
