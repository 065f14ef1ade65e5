"""Bad and hostile input against the running service: every case answered 4xx naming the field.

Each case sends one malformed request to ``dropprice serve`` and checks that it is
refused with a 4xx whose body names the offending field (or, for ``POST /v1/events``,
where valid events in a batch are accepted even when others are rejected, that the
event's own result is a rejection naming the field), and that nothing was sold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from reliability_harness import FIGURES, MARKET, POS_KEY, sale_event

pytestmark = pytest.mark.timeout(120)

ACCEPTED = {"accepted", "duplicate"}


@pytest.fixture(scope="module")
def client(reliability_env: Any) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=reliability_env.base_url, headers={"X-API-Key": POS_KEY}, timeout=10
    ) as c:
        yield c


def _inventory(client: httpx.Client, sku: str) -> int:
    r = client.get(f"/v1/prices/{sku}", params={"market": MARKET})
    assert r.status_code == 200, r.text
    return int(r.json()["inventory"])


def _assert_refused_naming(response: httpx.Response, field: str) -> None:
    """4xx naming ``field``; or a 200 batch whose only event is rejected naming it."""
    FIGURES.add(requests_sent=1)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        results = response.json()["results"]
        assert len(results) == 1
        assert results[0].get("status") not in ACCEPTED, results[0]
        assert field in json.dumps(results[0]), results[0]
        return
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text, response.text


def _event(**changes: Any) -> dict[str, Any]:
    event = sale_event("REL-1")
    for name, value in changes.items():
        if value is _DROP:
            event.pop(name)
        else:
            event[name] = value
    return event


_DROP = object()

EVENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("zero quantity", {"quantity": 0}, "quantity"),
    ("negative quantity", {"quantity": -3}, "quantity"),
    ("absurd quantity", {"quantity": 10**12}, "quantity"),
    ("fractional quantity", {"quantity": 1.5}, "quantity"),
    ("string quantity", {"quantity": "lots"}, "quantity"),
    ("negative price", {"unit_price": -1.0}, "unit_price"),
    ("absurd price", {"unit_price": 1e15}, "unit_price"),
    ("sub-cent price", {"unit_price": 19.999}, "unit_price"),
    ("empty sku", {"sku": ""}, "sku"),
    ("long sku", {"sku": "S" * 300}, "sku"),
    ("sku with a hash tag", {"sku": "A{B}"}, "sku"),
    ("long market", {"market": "m" * 300}, "market"),
    ("empty event_id", {"event_id": ""}, "event_id"),
    ("long event_id", {"event_id": "e" * 5000}, "event_id"),
    ("naive timestamp", {"ts": "2026-12-05T18:00:00"}, "ts"),
    ("not a timestamp", {"ts": "yesterday"}, "ts"),
    ("unknown type", {"type": "teleport"}, "type"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("missing event_id", {"event_id": _DROP}, "event_id"),
]


@pytest.mark.parametrize(("case", "changes", "field"), EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_bad_event_refused_naming_field(
    client: httpx.Client, case: str, changes: dict[str, Any], field: str
) -> None:
    before = _inventory(client, "REL-1")
    r = client.post("/v1/events", json={"events": [_event(**changes)]})
    _assert_refused_naming(r, field)
    assert _inventory(client, "REL-1") == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_refused(client: httpx.Client, literal: str) -> None:
    event = json.dumps(_event(unit_price=123456.0)).replace("123456.0", literal)
    before = _inventory(client, "REL-1")
    r = client.post(
        "/v1/events",
        content=f'{{"events": [{event}]}}',
        headers={"Content-Type": "application/json"},
    )
    FIGURES.add(requests_sent=1)
    assert 400 <= r.status_code < 500 or r.status_code == 200, r.text
    if r.status_code == 200:
        assert r.json()["results"][0]["status"] not in ACCEPTED
    assert _inventory(client, "REL-1") == before


def test_valid_events_accepted_beside_invalid_ones(client: httpx.Client) -> None:
    """A batch mixing good and bad events: per-event results, or the whole batch refused
    naming the bad one; never a good event silently lost or a bad one applied."""
    good = [sale_event("REL-2") for _ in range(3)]
    bad = _event(quantity=-1)
    before = _inventory(client, "REL-2")
    r = client.post("/v1/events", json={"events": [good[0], bad, good[1], good[2]]})
    FIGURES.add(requests_sent=1)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        statuses = [x["status"] for x in r.json()["results"]]
        assert statuses[0] == statuses[2] == statuses[3] == "accepted"
        assert statuses[1] not in ACCEPTED and "quantity" in json.dumps(r.json()["results"][1])
        assert _inventory(client, "REL-2") == before - 3
    else:
        assert "quantity" in r.text and "1" in r.text
        assert _inventory(client, "REL-2") == before


def test_batch_size_limits_name_the_field(client: httpx.Client) -> None:
    r = client.post("/v1/prices:batch", json={"items": [{"sku": "REL-1", "market": MARKET}] * 501})
    _assert_refused_naming(r, "items")
    ok = client.post("/v1/prices:batch", json={"items": [{"sku": "REL-1", "market": MARKET}] * 500})
    assert ok.status_code == 200 and len(ok.json()["prices"]) == 500
    events = [sale_event("REL-1", quantity=1) for _ in range(1001)]
    r = client.post("/v1/events", json={"events": events})
    FIGURES.add(requests_sent=2)
    assert 400 <= r.status_code < 500 and "events" in r.text, r.text[:500]


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    before = _inventory(client, "REL-1")
    padding = "x" * (2 << 20)
    r = client.post(
        "/v1/events", json={"events": [_event(event_id="pad-" + padding[:10])], "pad": padding}
    )
    FIGURES.add(requests_sent=1)
    assert r.status_code == 413, r.text[:300]
    assert "limit" in r.json()["detail"]
    assert _inventory(client, "REL-1") == before


def test_chunked_body_over_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for _ in range(8000):  # ~1.6 MB, over the 1 MiB default
            yield (json.dumps(sale_event("REL-1")) + ",").encode()
        yield b"{}]}"

    r = client.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
    FIGURES.add(requests_sent=1)
    assert r.status_code == 413, r.text[:300]
    assert r.json()["code"] == "body_too_large", r.text[:300]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
        (b'"events"', "application/json"),
        (b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
    ],
    ids=["broken", "array", "string", "deep-nesting", "binary"],
)
def test_malformed_bodies_are_4xx(client: httpx.Client, body: bytes, content_type: str) -> None:
    for path in ("/v1/events", "/v1/prices:batch"):
        r = client.post(path, content=body, headers={"Content-Type": content_type})
        FIGURES.add(requests_sent=1)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_real_sale_with_the_wrong_content_type_is_refused(
    client: httpx.Client, content_type: str
) -> None:
    before = _inventory(client, "REL-1")
    sale = json.dumps({"events": [_event(event_id=f"ctype-{content_type[:4]}")]}).encode()
    r = client.post("/v1/events", content=sale, headers={"Content-Type": content_type})
    FIGURES.add(requests_sent=1)
    assert r.status_code == 415, r.text
    assert r.json()["code"] == "unsupported_media_type" and r.json()["request_id"]
    assert _inventory(client, "REL-1") == before
    items = json.dumps({"items": [{"sku": "REL-1", "market": MARKET}]}).encode()
    r = client.post("/v1/prices:batch", content=items, headers={"Content-Type": content_type})
    assert r.status_code == 415, r.text


def test_headers_over_the_limit_are_refused_before_the_key_check(client: httpx.Client) -> None:
    r = client.get(
        "/v1/prices/REL-1",
        params={"market": MARKET},
        headers={"X-API-Key": "", "X-Padding": "x" * 64_000},
    )
    FIGURES.add(requests_sent=1)
    assert r.status_code == 431, r.text[:300]
    assert r.json()["code"] == "headers_too_large" and r.json()["request_id"]


QUERY_CASES: list[tuple[str, Callable[[httpx.Client], httpx.Response], str]] = [
    ("long market", lambda c: c.get("/v1/prices/REL-1", params={"market": "m" * 300}), "market"),
    ("long sku", lambda c: c.get("/v1/prices/" + "S" * 300, params={"market": MARKET}), "sku"),
    (
        "batch unknown field",
        lambda c: c.post(
            "/v1/prices:batch", json={"items": [{"sku": "REL-1", "market": MARKET, "x": 1}]}
        ),
        "x",
    ),
    (
        "batch top-level unknown field",
        lambda c: c.post(
            "/v1/prices:batch", json={"items": [{"sku": "REL-1", "market": MARKET}], "debug": True}
        ),
        "debug",
    ),
    (
        "signals in year 1",
        lambda c: c.get("/v1/signals", params={"until": "0001-01-01T01:00:00Z"}),
        "until",
    ),
    (
        "signals since a bare number",
        lambda c: c.get("/v1/signals", params={"since": "-119843"}),
        "since",
    ),
    (
        "events top-level unknown field",
        lambda c: c.post("/v1/events", json={"events": [sale_event("REL-1")], "force": True}),
        "force",
    ),
]


@pytest.mark.parametrize(("case", "send", "field"), QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_bad_reads_refused_naming_field(
    client: httpx.Client, case: str, send: Callable[[httpx.Client], httpx.Response], field: str
) -> None:
    before = _inventory(client, "REL-1")
    r = send(client)
    FIGURES.add(requests_sent=1)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code != 404:
        assert field in r.text, r.text[:300]
    assert _inventory(client, "REL-1") == before


def test_unknown_sku_is_404_json(client: httpx.Client) -> None:
    r = client.get("/v1/prices/NO-SUCH-SKU", params={"market": MARKET})
    FIGURES.add(requests_sent=1)
    assert r.status_code == 404
    assert "NO-SUCH-SKU" in json.dumps(r.json())
