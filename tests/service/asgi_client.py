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


# ---------------------------------------------------------------- test helpers
DROP_YAML = """
id: test-drop
markets: [nyc, paris]
windows:
  - start: "2026-01-01T10:00:00+00:00"
    end: "2026-01-01T12:00:00+00:00"
period_minutes: 10
guardrails: {floor: 5.0, ceiling: 200.0}
skus:
  - sku: TEE-1
    category: apparel
    list_price: 30.0
    inventory: {nyc: 12}
  - sku: CAP-2
    category: apparel
    list_price: 150.0
    currency: EUR
    inventory: {nyc: 5, paris: 7}
"""

KEYS = {"pos": "key-pos-0123456789", "operator": "key-op-0123456789", "admin": "key-admin-012345"}


def write_configs(root: Any, *, quote_ttl_seconds: int = 120) -> Any:
    """A config folder with one drop: TEE-1 (nyc: 12 units), CAP-2 (nyc: 5, paris: 7)."""
    (root / "drops").mkdir(parents=True, exist_ok=True)
    (root / "defaults.yaml").write_text(
        f"currency: USD\nquote_ttl_seconds: {quote_ttl_seconds}\nkeep_versions: 3\n"
    )
    (root / "drops" / "test-drop.yaml").write_text(DROP_YAML)
    return root


def settings_for(redis_url: str, config_dir: Any, **overrides: Any) -> Any:
    from service.auth import hash_api_key
    from service.settings import Settings

    values: dict[str, Any] = {
        "redis_url": redis_url,
        "config_dir": config_dir,
        "api_keys": {hash_api_key(k): role for role, k in KEYS.items()},
        "redis_timeout_ms": 500,
        "resync_interval_s": 0.5,
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


def auth(role: str = "pos") -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}
