"""API keys and roles: hashed at rest, 401 without a valid key, 403 below the role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgi_client import KEYS, AppClient, auth, settings_for, write_configs
from fastapi import APIRouter
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.app import create_app
from service.auth import ApiKeys, hash_api_key, new_api_key
from service.deps import AdminCaller, OperatorCaller
from service.settings import Role, Settings

probe = APIRouter()


@probe.get("/test/operator")
def operator_only(caller: OperatorCaller) -> dict[str, str]:
    return {"role": caller.role.value}


@probe.get("/test/admin")
def admin_only(caller: AdminCaller) -> dict[str, str]:
    return {"role": caller.role.value}


@pytest.fixture
def client(redis_url: str, tmp_path) -> Iterator[AppClient]:
    app = create_app(settings_for(redis_url, write_configs(tmp_path)))
    app.include_router(probe)
    with AppClient(app) as c:
        yield c


ENDPOINTS = [
    ("GET", "/v1/prices/TEE-1", None, Role.pos),
    ("POST", "/v1/prices:batch", {"items": [{"sku": "TEE-1"}]}, Role.pos),
    (
        "POST",
        "/v1/events",
        {
            "events": [
                {
                    "type": "claim",
                    "event_id": "c1",
                    "sku": "TEE-1",
                    "market": "nyc",
                    "ts": "2026-01-01T10:00:00Z",
                }
            ]
        },
        Role.pos,
    ),
    ("GET", "/v1/skus/TEE-1/intensity", None, Role.pos),
    ("GET", "/test/operator", None, Role.operator),
    ("GET", "/test/admin", None, Role.admin),
]


@pytest.mark.parametrize(("method", "path", "body", "needs"), ENDPOINTS)
def test_auth_matrix(client: AppClient, method: str, path: str, body, needs: Role) -> None:
    def call(headers: dict[str, str]) -> int:
        return client.request(method, path, headers=headers, json=body).status_code

    assert call({}) == 401
    assert call({"X-API-Key": "not-a-key"}) == 401
    assert call({"X-API-Key": hash_api_key(KEYS["admin"])}) == 401  # the digest is no key
    for role in Role:
        expected = 200 if role.allows(needs) else 403
        assert call(auth(role.value)) == expected, (role, path)


def test_errors_say_what_is_wrong(client: AppClient) -> None:
    r = client.get("/v1/prices/TEE-1")
    assert r.json()["code"] == "unauthorized" and r.headers["www-authenticate"] == "ApiKey"
    r = client.get("/test/admin", headers=auth("operator"))
    assert r.json()["code"] == "forbidden" and "'admin'" in r.json()["detail"]


def test_health_and_metrics_need_no_key(client: AppClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert client.get("/metrics").status_code == 200


def test_settings_refuse_to_run_without_keys_unless_dev_mode_is_explicit(redis_url) -> None:
    with pytest.raises(ValidationError, match="no API keys configured"):
        Settings(redis_url=redis_url)
    with pytest.raises(ValidationError, match="SHA-256 digests"):
        Settings(redis_url=redis_url, api_keys={"plain-key": "pos"})
    dev = Settings(redis_url=redis_url, auth_disabled=True)
    assert ApiKeys(dev.api_keys, disabled=True).role_for(None) is Role.admin
    prefixed = Settings(api_keys={"sha256:" + hash_api_key("k"): "operator"})
    assert ApiKeys(prefixed.api_keys).role_for("k") is Role.operator


def test_settings_come_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DROPPRICE_API_KEYS", f'{{"{hash_api_key("k")}": "admin"}}')
    monkeypatch.setenv("DROPPRICE_REDIS_TIMEOUT_MS", "40")
    monkeypatch.setenv("DROPPRICE_CONFIG_DIR", str(tmp_path))
    s = Settings()
    assert s.redis_timeout_s == 0.04 and s.config_dir == tmp_path
    assert ApiKeys(s.api_keys).role_for("k") is Role.admin
    monkeypatch.setenv("DROPPRICE_REDIS_TIMEOUT_MS", "0")
    with pytest.raises(ValidationError, match="redis_timeout_ms"):
        Settings()


def test_dev_mode_serves_without_a_key(redis_url: str, tmp_path) -> None:
    settings = settings_for(redis_url, write_configs(tmp_path), api_keys={}, auth_disabled=True)
    with AppClient(create_app(settings)) as c:
        assert c.get("/v1/prices/TEE-1").status_code == 200


@given(st.text(min_size=1, max_size=64))
def test_only_the_exact_key_matches(presented: str) -> None:
    key = new_api_key()
    keys = ApiKeys({hash_api_key(key): Role.pos})
    assert keys.role_for(key) is Role.pos
    if presented != key:
        assert keys.role_for(presented) is None
