"""Who may call what: 401/403 on every route the app has, no secret in logs, CORS off.

The route matrix is built from the application's own ``app.routes``, so a route added
later without auth fails :func:`test_every_route_requires_a_key` until it is either
protected or added to :data:`PUBLIC_ROUTES` on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from reliability_harness import ADMIN_KEY, FIGURES, MARKET, OPERATOR_KEY, POS_KEY, SECRETS

pytestmark = pytest.mark.timeout(120)

PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/console"),
        ("GET", "/console/{asset}"),
    }
)
"""Probes, the Prometheus scrape, the API docs and the console's page and assets (static
files; every call the page makes carries a key): no key by design."""

POS_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/v1/prices/{sku}"),
        ("POST", "/v1/prices:batch"),
        ("POST", "/v1/events"),
        ("GET", "/v1/skus/{sku}/intensity"),
        ("GET", "/v1/signals"),
    }
)
"""What a ``pos`` key may call: prices and events, and the two read-only analyst feeds
(the intensity series and the signals feed answer to any key by design)."""

WRONG_KEY = "pos-reliability-key-0123456789abcdeX"  # one character off a real key


def _walk(routes: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every endpoint, descending into included routers and mounts."""
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router
        if inner is not None:
            extra = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from _walk(inner.routes, prefix + extra)
            continue
        path = getattr(route, "path", None)
        sub = getattr(route, "routes", None)
        if sub and not getattr(route, "methods", None):  # a Mount
            yield from _walk(sub, prefix + (path or ""))
            continue
        if path is None:
            continue
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"}):
            yield method, prefix + path


def app_routes() -> list[tuple[str, str]]:
    """Every (method, path template) the application serves, from ``app.routes``."""
    from service.app import create_app
    from service.auth import hash_api_key
    from service.settings import Settings

    app = create_app(Settings(api_keys={hash_api_key(POS_KEY): "pos"}))
    routes = sorted(set(_walk(app.routes)))
    documented = {
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    }
    assert documented <= set(routes), sorted(documented - set(routes))
    return routes


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "REL-1", path)


@pytest.fixture(scope="module")
def http(reliability_env: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reliability_env.base_url, timeout=10) as c:
        yield c


def _send(http: httpx.Client, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    params = {"market": MARKET}
    FIGURES.add(requests_sent=1)
    if method in ("POST", "PUT", "PATCH"):
        return http.request(method, _concrete(path), headers=headers, params=params, json={})
    return http.request(method, _concrete(path), headers=headers, params=params)


def test_route_inventory_is_not_empty() -> None:
    routes = app_routes()
    assert set(routes) >= POS_ROUTES, sorted(POS_ROUTES - set(routes))


def test_every_route_requires_a_key(http: httpx.Client) -> None:
    """No key or a wrong key: 401 on every non-public route."""
    failures = []
    for method, path in app_routes():
        if (method, path) in PUBLIC_ROUTES:
            continue
        for key in (None, WRONG_KEY, ""):
            r = _send(http, method, path, key)
            if r.status_code != 401:
                failures.append((method, path, repr(key)[:12], r.status_code, r.text[:120]))
    assert not failures, failures


def test_pos_key_is_403_on_operator_routes(http: httpx.Client) -> None:
    """A ``pos`` key on any route outside the POS set: 403, never served."""
    failures = []
    for method, path in app_routes():
        if (method, path) in PUBLIC_ROUTES | POS_ROUTES:
            continue
        r = _send(http, method, path, POS_KEY)
        if r.status_code != 403:
            failures.append((method, path, r.status_code, r.text[:120]))
    assert not failures, failures


def test_operator_and_admin_keys_are_not_refused_on_pos_routes(http: httpx.Client) -> None:
    for key in (OPERATOR_KEY, ADMIN_KEY, POS_KEY):
        r = _send(http, "GET", "/v1/prices/{sku}", key)
        assert r.status_code == 200, r.text


def test_401_and_403_bodies_do_not_echo_the_key(http: httpx.Client) -> None:
    r = _send(http, "POST", "/v1/events", WRONG_KEY)
    assert r.status_code == 401 and WRONG_KEY not in r.text
    assert r.json()  # a JSON error body


def test_no_secret_in_logs(http: httpx.Client, reliability_env: Any) -> None:
    """After requests with every real key and a wrong one, no key appears in the logs."""
    for key in (*SECRETS, WRONG_KEY):
        _send(http, "GET", "/v1/prices/{sku}", key)
        _send(http, "POST", "/v1/events", key)
    _send(http, "GET", "/v1/prices/{sku}", None)
    logs = reliability_env.service.logs()
    assert logs, "the service wrote no logs at all"
    for secret in (*SECRETS, WRONG_KEY):
        assert secret not in logs
        assert secret[:20] not in logs  # nor a recognisable prefix


def test_cors_is_off_by_default(http: httpx.Client) -> None:
    origin = {"Origin": "https://evil.example"}
    r = http.get(
        "/v1/prices/REL-1", params={"market": MARKET}, headers={**origin, "X-API-Key": POS_KEY}
    )
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    pre = http.options(
        "/v1/events",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    FIGURES.add(requests_sent=2)
    assert "access-control-allow-origin" not in pre.headers
    assert pre.status_code != 200 or "access-control-allow-methods" not in pre.headers


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A presented key is hashed (SHA-256) before anything is compared, and digests are
    confirmed with ``hmac.compare_digest``: the raw key never meets ``==``, and a key one
    character off a real one costs exactly what a random key costs."""
    import hmac

    from service.auth import ApiKeys, hash_api_key
    from service.settings import Role

    configured = [f"key-{i}-0123456789abcdef0123456789" for i in range(6)]
    api_keys = ApiKeys({hash_api_key(k): Role.pos for k in configured})
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)

    def compares(presented: str) -> int:
        calls.clear()
        api_keys.role_for(presented)
        assert all(len(a) == len(b) == 64 for a, b in calls), "compared something not a digest"
        assert all(presented.encode() not in (a, b) for a, b in calls)
        return len(calls)

    near_misses = [configured[0][:-1] + "X", "X" + configured[-1][1:], configured[2] + "0"]
    strangers = ["nope", WRONG_KEY, "x" * 10_000]
    assert len({compares(k) for k in near_misses + strangers}) == 1
    assert compares(configured[0]) == compares(configured[-1]) >= 1
    assert api_keys.role_for(configured[-1]) == Role.pos
    assert all(api_keys.role_for(k) is None for k in near_misses + strangers)
