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

The package's modules, one per part of the page: :mod:`~service.routes.console.page`
(the page, its assets, the session), :mod:`~service.routes.console.board`,
:mod:`~service.routes.console.sku`, :mod:`~service.routes.console.drops` and
:mod:`~service.routes.console.versions` (kept versions and rollback); :data:`router`
includes them all.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.routes.console import board, drops, page, sku, versions

__all__ = ["router"]

router = APIRouter()
for _part in (page, board, sku, drops, versions):
    router.include_router(_part.router)
