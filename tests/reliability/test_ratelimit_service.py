"""Per-key rate limiting in the real app (lifespan, Redis, the price fast path included).

The app runs in-process (its lifespan run on a private event loop) against the
session's real Redis, with a deliberately small ``pos`` budget so the limit is
reached in a handful of requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import anyio.from_thread
import httpx
import pytest
from reliability_harness import ADMIN_KEY, FIGURES, MARKET, OPERATOR_KEY, POS_KEY, sale_event

from service.auth import hash_api_key
from service.settings import Settings

pytestmark = pytest.mark.timeout(120)

SECOND_POS_KEY = "pos-reliability-second-key-0123456789"


class AppClient:
    """Blocking client for the ASGI app, its lifespan run on a private event loop."""

    def __init__(self, app: Any) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self._lifespan = app.router.lifespan_context(app)
        self.portal.call(self._lifespan.__aenter__)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dropprice.test"
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, "GET", url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, "POST", url, **kwargs))

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.portal.call(self.client.aclose)
        self.portal.call(self._lifespan.__aexit__, None, None, None)
        self._portal_cm.__exit__(None, None, None)


def _app_client(reliability_env: Any, **overrides: Any) -> AppClient:
    from service.app import create_app

    settings = Settings(
        redis_url=reliability_env.redis.url,
        config_dir=reliability_env.config_dir,
        api_keys={
            hash_api_key(POS_KEY): "pos",
            hash_api_key(SECOND_POS_KEY): "pos",
            hash_api_key(OPERATOR_KEY): "operator",
            hash_api_key(ADMIN_KEY): "admin",
        },
        access_log=False,
        **overrides,
    )
    return AppClient(create_app(settings))


@pytest.fixture(scope="module")
def limited(reliability_env: Any) -> Iterator[AppClient]:
    """Pos keys limited to 5 requests at once, refilled at 0.2 per second."""
    with _app_client(
        reliability_env, rate_limit_pos_per_second=0.2, rate_limit_pos_burst=5
    ) as client:
        yield client


def _price(client: AppClient, key: str) -> Any:
    FIGURES.add(requests_sent=1)
    return client.get(
        "/v1/prices/REL-1",
        params={"market": MARKET},
        headers={"X-API-Key": key, "X-Request-ID": "rl-test"},
    )


def test_pos_key_gets_429_with_retry_after_past_its_burst(limited: AppClient) -> None:
    statuses = [_price(limited, POS_KEY).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = _price(limited, POS_KEY)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 5  # a whole token takes 5 s at 0.2/s
    assert refused.headers["x-request-id"] == "rl-test"
    body = refused.json()
    assert body["code"] == "rate_limited" and "pos" in body["detail"]
    # sales share the key's bucket: refused before anything is recorded
    sale = limited.post(
        "/v1/events", json={"events": [sale_event("REL-1")]}, headers={"X-API-Key": POS_KEY}
    )
    FIGURES.add(requests_sent=1)
    assert sale.status_code == 429 and "retry-after" in sale.headers


def test_limits_are_per_key_and_per_role(limited: AppClient) -> None:
    assert _price(limited, SECOND_POS_KEY).status_code == 200  # its own bucket
    for key in (OPERATOR_KEY, ADMIN_KEY):  # unlimited by default
        assert all(_price(limited, key).status_code == 200 for _ in range(30))
    assert all(limited.get("/healthz").status_code == 200 for _ in range(30))


def test_unknown_key_is_401_not_429(limited: AppClient) -> None:
    for _ in range(10):
        r = _price(limited, "not-a-key")
        assert r.status_code == 401


def test_limit_can_be_turned_off(reliability_env: Any) -> None:
    with _app_client(reliability_env, rate_limit_enabled=False) as client:
        assert all(_price(client, POS_KEY).status_code == 200 for _ in range(40))


def test_on_by_default_for_pos_keys() -> None:
    settings = Settings(api_keys={hash_api_key(POS_KEY): "pos"})
    assert settings.rate_limit_enabled
    assert settings.rate_limit_pos_per_second and settings.rate_limit_pos_per_second >= 100
    assert settings.rate_limit_operator_per_second is None
