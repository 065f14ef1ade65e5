"""Body size limit middleware and currency decimals (service/limits.py), in-process."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.limits import BodySizeLimitMiddleware, check_price_decimals, minor_units


async def _echo_len_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    total = 0
    more = True
    while more:
        message = await receive()
        total += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(total).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _post(app: BodySizeLimitMiddleware, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/events", content=content)

    return asyncio.run(run())


def test_declared_length_over_limit_is_413_without_reading() -> None:
    app = BodySizeLimitMiddleware(_echo_len_app, max_body_bytes=100)
    assert _post(app, b"x" * 100).text == "100"
    refused = _post(app, b"x" * 101)
    assert refused.status_code == 413
    assert "101 bytes" in refused.json()["detail"] and "100 bytes" in refused.json()["detail"]


def test_chunked_body_is_cut_off_once_past_the_limit() -> None:
    app = BodySizeLimitMiddleware(_echo_len_app, max_body_bytes=1000)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 300
            yield b"y" * 300

    refused = _post(app, chunks())
    assert refused.status_code == 413
    assert "1000 bytes" in refused.json()["detail"]


def test_rejects_bad_limit() -> None:
    with pytest.raises(ValueError, match="max_body_bytes must be >= 1, got 0"):
        BodySizeLimitMiddleware(_echo_len_app, max_body_bytes=0)


def test_minor_units() -> None:
    assert (minor_units("USD"), minor_units("eur"), minor_units("JPY"), minor_units("BHD")) == (
        2,
        2,
        0,
        3,
    )


@given(cents=st.integers(0, 10**9), currency=st.sampled_from(["USD", "EUR", "GBP"]))
def test_prices_typed_in_cents_always_pass(cents: int, currency: str) -> None:
    check_price_decimals(cents / 100, currency)


@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e6))
def test_decimals_check_agrees_with_rounding(value: float) -> None:
    ok = round(value, 2) == value
    if ok:
        check_price_decimals(value, "USD")
    else:
        with pytest.raises(ValueError, match=r"unit_price: .* USD allows at most 2"):
            check_price_decimals(value, "USD")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_prices_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        check_price_decimals(bad, "USD", field="events[0].unit_price")


def test_yen_has_no_decimals() -> None:
    check_price_decimals(1500.0, "JPY")
    with pytest.raises(ValueError, match="JPY allows at most 0"):
        check_price_decimals(1500.5, "JPY")
