"""Operator endpoints against the real app and a real Redis: live config without restart,
drop edits with field-path errors, the audit trail, explain and preview vs what is served."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from service import keys
from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.config.loader import load_config_dir
from service.config.versions import ConfigStore
from service.refit import Refitter
from service.settings import Role, Settings
from service.store import PriceStore, connect
from tests.service.asgi_client import AppClient
from tests.service.refit_factories import (
    ELASTIC,
    MARKET,
    SimDrop,
    day_of_events,
    write_configs,
)

POS_KEY, OPERATOR_KEY = "pos-key-for-operator-tests", "operator-key-for-operator-tests"
POS = {"X-API-Key": POS_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}


@pytest.fixture
def drop(tmp_path: Path) -> SimDrop:
    return write_configs(tmp_path / "configs", 2, inventory=300)


@pytest.fixture
def client(redis_url: str, drop: SimDrop) -> Iterator[AppClient]:
    settings = Settings(
        redis_url=redis_url,
        config_dir=drop.config_dir,
        api_keys={hash_api_key(POS_KEY): Role.pos, hash_api_key(OPERATOR_KEY): Role.operator},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
        resync_interval_s=0.5,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _drop_yaml(drop: SimDrop) -> dict[str, Any]:
    return yaml.safe_load((drop.config_dir / "drops" / "sim-drop.yaml").read_text())


def _price(client: AppClient, sku: str) -> dict[str, Any]:
    r = client.get(f"/v1/prices/{sku}", params={"market": MARKET}, headers=POS)
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- config: apply -> live without restart -----------------------------------------------------


def test_cli_apply_goes_live_without_restart(
    client: AppClient, redis_url: str, drop: SimDrop
) -> None:
    sku = drop.skus[0]
    r = client.get("/v1/config", headers=OPERATOR)
    assert r.status_code == 200
    assert r.json()["source"] == "files" and r.json()["version"] is None
    assert _price(client, sku)["price"] == drop.list_price[sku]

    runner = CliRunner()
    first = runner.invoke(cli, ["config", "apply", str(drop.config_dir), "--redis-url", redis_url])
    assert first.exit_code == 0 and "config version 1 is live" in first.output, first.output
    assert "+ drops[sim-drop]: drop with 2 SKUs in 1 markets" in first.output

    data = _drop_yaml(drop)
    data["skus"][0]["list_price"] = drop.list_price[sku] + 1.0
    data["skus"].append(
        {"sku": "NEW-1", "category": "sim", "list_price": 12.5, "inventory": {MARKET: 7}}
    )
    (drop.config_dir / "drops" / "sim-drop.yaml").write_text(yaml.safe_dump(data))
    diff = runner.invoke(cli, ["config", "diff", str(drop.config_dir), "--redis-url", redis_url])
    assert diff.exit_code == 0, diff.output
    assert f"~ drops[sim-drop].skus[{sku}].list_price" in diff.output
    assert "+ drops[sim-drop].skus[NEW-1]" in diff.output
    applied = runner.invoke(
        cli,
        ["config", "apply", str(drop.config_dir), "--redis-url", redis_url, "--actor", "alice"],
    )
    assert applied.exit_code == 0, applied.output
    assert "config version 2 is live" in applied.output

    # The running app serves the new version: no restart, no request to it in between.
    assert _until(lambda: _price(client, sku)["price"] == drop.list_price[sku] + 1.0)
    new = _until(
        lambda: (
            r.json()
            if (r := client.get("/v1/prices/NEW-1", headers=POS)).status_code == 200
            else None
        )
    )
    assert new["price"] == 12.5 and new["inventory"] == 7 and new["source"] == "base"
    # Prices and the config record reach the app through separate notifications: wait for
    # the record too rather than read it once.
    got = _until(
        lambda: (
            c if (c := client.get("/v1/config", headers=OPERATOR).json())["version"] == 2 else None
        )
    )
    assert got is not None, "the app never reported config version 2"
    assert (got["version"], got["source"], got["actor"]) == (2, "redis", "alice")
    skus = [s["sku"] for s in got["config"]["drops"][0]["skus"]]
    assert "NEW-1" in skus

    again = runner.invoke(cli, ["config", "apply", str(drop.config_dir), "--redis-url", redis_url])
    assert again.exit_code == 0 and "no changes" in again.output


def test_applied_version_survives_a_restart_over_the_files(redis_url: str, drop: SimDrop) -> None:
    bundle = load_config_dir(drop.config_dir)
    data = _drop_yaml(drop)
    data["skus"][1]["list_price"] = 16.5
    from service.config.models import DropConfig

    store = ConfigStore(connect(redis_url, timeout=5))
    store.apply(bundle.with_drops([DropConfig.model_validate(data)]), actor="bob")
    settings = Settings(
        redis_url=redis_url,
        config_dir=drop.config_dir,
        auth_disabled=True,
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    # A process started later with the (unchanged) files serves the applied version.
    with AppClient(create_app(settings)) as c:
        assert _until(lambda: c.get(f"/v1/prices/{drop.skus[1]}").json()["price"] == 16.5)
        assert c.get("/v1/config").json()["version"] == 1


# -- PUT /v1/drops --------------------------------------------------------------------------


def test_put_drop_reports_every_problem_with_its_field_path(
    client: AppClient, drop: SimDrop
) -> None:
    data = _drop_yaml(drop)
    data["skus"][1]["guardrails"] = {"floor": 500.0, "ceiling": 400.0}
    data["skus"][0]["list_price"] = -1
    r = client.request("PUT", "/v1/drops/sim-drop", json=data, headers=OPERATOR)
    assert r.status_code == 422, r.text
    fields = {(e["field"], e["message"].split(":")[0]) for e in r.json()["errors"]}
    assert ("skus[1].guardrails.floor", "floor 500 is above ceiling 400") in fields
    assert any(f == "skus[0].list_price" for f, _ in fields)

    # YAML bodies get line numbers too, in the CLI's format.
    text = yaml.safe_dump(_drop_yaml(drop), sort_keys=False).replace(
        "category: sim", "category: nope", 1
    )
    r = client.request(
        "PUT",
        "/v1/drops/sim-drop",
        content=text,
        headers={**OPERATOR, "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    line = next(i + 1 for i, ln in enumerate(text.splitlines()) if "category: nope" in ln)
    assert err["field"] == "skus[0].category" and err["line"] == line
    assert err["text"].startswith(f"drops/sim-drop.yaml:{line} skus[0].category: unknown category")

    r = client.request("PUT", "/v1/drops/other-id", json=_drop_yaml(drop), headers=OPERATOR)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "id"
    r = client.request("PUT", "/v1/drops/sim-drop", json=_drop_yaml(drop), headers=POS)
    assert r.status_code == 403


def test_put_drop_applies_a_version_and_refuses_a_stale_one(
    client: AppClient, drop: SimDrop
) -> None:
    data = _drop_yaml(drop)
    data["skus"][0]["list_price"] = 15.0
    headers = {**OPERATOR, "X-Actor": "carol"}
    r = client.request(
        "PUT", "/v1/drops/sim-drop", json=data, params={"expect_version": 0}, headers=headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1 and body["changed"]
    assert body["changes"] == [
        f"~ drops[sim-drop].skus[{drop.skus[0]}].list_price: {drop.list_price[drop.skus[0]]} -> 15.0"
    ]
    # This process answers with the new config right away.
    assert _price(client, drop.skus[0])["price"] == 15.0
    data["skus"][0]["list_price"] = 16.0
    r = client.request(
        "PUT", "/v1/drops/sim-drop", json=data, params={"expect_version": 0}, headers=headers
    )
    assert r.status_code == 409 and r.json()["code"] == "config_conflict"
    assert _price(client, drop.skus[0])["price"] == 15.0


def test_delete_drop_stops_serving_its_skus(client: AppClient, drop: SimDrop) -> None:
    pop = {
        "id": "pop",
        "markets": [MARKET],
        "windows": [{"start": "2026-12-20T10:00:00Z", "end": "2026-12-20T12:00:00Z"}],
        "skus": [{"sku": "POP-1", "category": "sim", "list_price": 4.5, "inventory": {MARKET: 9}}],
    }
    r = client.request("PUT", "/v1/drops/pop", json=pop, headers=OPERATOR)
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == ["+ drops[pop]: drop with 1 SKUs in 1 markets"]
    assert _price(client, "POP-1")["price"] == 4.5
    r = client.request("DELETE", "/v1/drops/pop", headers=OPERATOR)
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == ["- drops[pop]"]
    gone = client.get("/v1/prices/POP-1", params={"market": MARKET}, headers=POS)
    assert gone.status_code == 404
    # Still gone after the sync thread's next full resync from Redis.
    time.sleep(1.2)
    assert client.get("/v1/prices/POP-1", params={"market": MARKET}, headers=POS).status_code == 404
    assert _price(client, drop.skus[0])["price"] == drop.list_price[drop.skus[0]]
    r = client.request("DELETE", "/v1/drops/pop", headers=OPERATOR)
    assert r.status_code == 404 and r.json()["code"] == "unknown_drop"


# -- audit ------------------------------------------------------------------------------------


def test_audit_trail_records_who_when_and_the_diff(
    client: AppClient, drop: SimDrop, redis_url: str
) -> None:
    from service.audit import record_audit

    data = _drop_yaml(drop)
    for price in (15.0, 17.0):
        data["skus"][0]["list_price"] = price
        r = client.request(
            "PUT",
            "/v1/drops/sim-drop",
            json=data,
            headers={**OPERATOR, "X-Actor": "dana"},
            params={"note": f"to {price}"},
        )
        assert r.status_code == 200, r.text
    record_audit(connect(redis_url, timeout=5), "surface.publish", "worker-1", {"version": "v9"})

    r = client.get("/v1/audit", headers=OPERATOR)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert [x["kind"] for x in records] == ["config.apply", "config.apply", "surface.publish"]
    first, second = records[0], records[1]
    assert first["actor"].startswith("dana (operator:")
    assert first["detail"]["version"] == 1 and second["detail"]["base"] == 1
    assert second["detail"]["changes"] == [
        f"~ drops[sim-drop].skus[{drop.skus[0]}].list_price: 15.0 -> 17.0"
    ]
    assert second["detail"]["note"] == "to 17.0"
    ids = [x["id"] for x in records]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    after = client.get("/v1/audit", params={"since": ids[0]}, headers=OPERATOR).json()
    assert [x["id"] for x in after["records"]] == ids[1:]
    only = client.get("/v1/audit", params={"kind": "surface"}, headers=OPERATOR).json()
    assert [x["kind"] for x in only["records"]] == ["surface.publish"]
    by_time = client.get("/v1/audit", params={"since": records[2]["at"]}, headers=OPERATOR).json()
    assert records[2]["id"] in [x["id"] for x in by_time["records"]]
    bad = client.get("/v1/audit", params={"since": "yesterday"}, headers=OPERATOR)
    assert bad.status_code == 422 and "ISO 8601" in bad.text
    assert client.get("/v1/audit", headers=POS).status_code == 403


# -- explain and preview vs what is served -----------------------------------------------------


def _publish(redis_url: str, drop: SimDrop, client: AppClient, *, replay: bool = False) -> str:
    """Post a day of events through the API and run a re-fit on the live config.

    ``replay`` re-fits on exactly the same events (the re-fit group re-reads its
    streams; ``event_id`` de-duplication keeps the panel identical), so the new
    surfaces differ from the previous ones only by the config change.
    """
    store = PriceStore(connect(redis_url, timeout=30.0))
    if replay:
        for s in drop.skus:
            store.client.xgroup_setid(keys.events(s), "refit", "0")
    else:
        # Sales only: the index is then demand-driven, which the surface record's
        # intensity_now / intensity_mean describe exactly (see service.config.whatif).
        events = day_of_events(drop, rate=10.0, seed=5, announcements=False)
        for i in range(0, len(events), 1000):
            r = client.post("/v1/events", json={"events": events[i : i + 1000]}, headers=POS)
            assert r.status_code == 200, r.text
    for s in drop.skus:  # the simulated day used stock; start the window full
        store.set_inventory(s, MARKET, drop.inventory)
    live = ConfigStore(store.client).live()
    bundle = live.bundle if live is not None else load_config_dir(drop.config_dir)
    record = Refitter(store, bundle, device="cpu").run(force=True)
    assert record.state == "published", record.reasons
    assert record.version is not None
    return record.version


def test_explain_and_preview_agree_with_what_is_served(
    client: AppClient, redis_url: str, drop: SimDrop
) -> None:
    sku = next(s for s in drop.skus if drop.elasticity[s] == ELASTIC)
    r = client.get(f"/v1/skus/{sku}/explain", params={"market": MARKET}, headers=OPERATOR)
    assert r.status_code == 409 and r.json()["code"] == "no_surface"

    version = _publish(redis_url, drop, client)
    served = _until(lambda: (p := _price(client, sku))["version"] == version and p)
    assert served

    # Explain: the served price, the cell it came from, and why.
    r = client.get(f"/v1/skus/{sku}/explain", params={"market": MARKET}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    ex = r.json()
    assert ex["served"]["price"] == served["price"] == ex["surface"]["price"]
    assert ex["surface"]["version"] == version
    assert ex["units_left"] == drop.inventory == ex["surface"]["cell"]["units_left"]
    lo, hi = ex["elasticity"]["interval95"]
    assert lo < ex["elasticity"]["beta"] < hi < 0
    assert ex["time_left"]["window_open"] is False and ex["time_left"]["periods_left"] >= 1
    # The fit's regressor is the exogenous index: a day of sales alone leaves it at 0,
    # while the analysts' index (sales included) is up.
    assert ex["intensity"]["at_publish"] == 0.0
    assert ex["intensity"]["now"] > 0
    assert ex["intensity"]["source"] == "events"
    r = client.get(f"/v1/skus/{sku}/intensity", params={"market": MARKET}, headers=POS)
    assert ex["intensity"]["now"] == pytest.approx(r.json()["current"])
    free = ex["optimum"]["unconstrained"]
    # The elastic SKU's optimum sits below its list price.
    assert free < drop.list_price[sku]
    if ex["bound_by"] is None:
        assert free == pytest.approx(served["price"], rel=0.25)
    assert ex["reasons"]

    # Preview with no change reproduces the published surface exactly.
    r = client.post(f"/v1/skus/{sku}/preview", json={"market": MARKET}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    same = r.json()
    assert same["candidate"]["price_now"] == same["live"]["price_now"] == served["price"]
    np.testing.assert_allclose(same["candidate"]["surface"], same["live"]["surface"])
    assert same["candidate"]["expected_revenue"] == pytest.approx(
        same["live"]["expected_revenue"], rel=1e-9
    )
    assert 0 < same["live"]["sell_through"] <= 1

    # A higher floor: previewed, then applied and re-fitted: the service serves the preview.
    floor = round(served["price"] * 1.3, 2)
    r = client.post(
        f"/v1/skus/{sku}/preview",
        json={"market": MARKET, "guardrails": {"floor": floor}},
        headers=OPERATOR,
    )
    assert r.status_code == 200, r.text
    raised = r.json()
    assert raised["candidate"]["price_now"] >= floor
    assert raised["candidate"]["sell_through"] < same["candidate"]["sell_through"]
    assert raised["delta"]["price_now"] > 0

    data = _drop_yaml(drop)
    i = drop.skus.index(sku)
    data["skus"][i]["guardrails"]["floor"] = floor
    r = client.request("PUT", "/v1/drops/sim-drop", json=data, headers=OPERATOR)
    assert r.status_code == 200, r.text
    new_version = _publish(redis_url, drop, client, replay=True)
    now_served = _until(lambda: (p := _price(client, sku))["version"] == new_version and p)
    assert now_served["price"] == raised["candidate"]["price_now"]
    got = PriceStore(connect(redis_url, timeout=5)).get_surface(sku, MARKET)
    assert got is not None
    published, previewed = got[1].price, np.asarray(raised["candidate"]["surface"])
    assert published.shape == previewed.shape
    # The re-fit re-estimates the elasticity (warm-started, so not bit-identical to the
    # fit the preview used): every cell the new floor decides is served exactly as
    # previewed, and no cell goes under the floor.
    at_floor = np.isclose(previewed, floor)
    assert at_floor.any()
    np.testing.assert_allclose(published[at_floor], previewed[at_floor])
    assert published.min() >= floor - 1e-9
    # Against the new version and its fit, preview again reproduces what is served.
    r = client.post(f"/v1/skus/{sku}/preview", json={"market": MARKET}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["live"]["version"] == new_version
    np.testing.assert_allclose(again["candidate"]["surface"], published)
    assert again["candidate"]["price_now"] == now_served["price"]

    # Invalid candidate guardrails: 422 with the field path.
    r = client.post(
        f"/v1/skus/{sku}/preview",
        json={"market": MARKET, "guardrails": {"ceiling": 0.5}},
        headers=OPERATOR,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "guardrails.ceiling"
