"""A blocking HTTP client for the real ASGI app (httpx + lifespan), usable from threads."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.from_thread
import httpx
from fastapi import FastAPI


class AppClient:
    """Runs the app's lifespan and an ``httpx.AsyncClient`` on a private event loop.

    Calls may come from any number of threads at once (they are scheduled on the
    loop, where the app serves them concurrently), like requests from many POS
    terminals.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self._lifespan = app.router.lifespan_context(app)
        self.portal.call(self._lifespan.__aenter__)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dropprice.test"
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self.portal.call(self._lifespan.__aexit__, None, None, None)
        self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
