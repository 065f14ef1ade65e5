"""Request schemas: valid events pass, every invalid field is named (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.problems import field_errors
from service.schemas import PriceBatchIn, SaleEvent, event_adapter

ident = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
zoned = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]),
)
sales = st.fixed_dictionaries(
    {
        "type": st.just("sale"),
        "event_id": ident,
        "ts": zoned.map(lambda d: d.isoformat()),
        "sku": ident,
        "market": ident,
        "quantity": st.integers(1, 100_000),
        "unit_price": st.floats(0.01, 1_000_000, allow_nan=False),
    },
    optional={"quote_id": st.text(max_size=50)},
)


@given(sales)
def test_valid_sales_parse_to_the_same_values(raw: dict) -> None:
    ev = event_adapter.validate_python(raw)
    assert isinstance(ev, SaleEvent)
    assert (ev.sku, ev.market, ev.quantity) == (raw["sku"], raw["market"], raw["quantity"])
    assert ev.ts == datetime.fromisoformat(raw["ts"])


@given(sales, st.from_regex(r"[a-z_]{3,12}", fullmatch=True))
def test_an_unknown_field_is_rejected_by_name(raw: dict, extra: str) -> None:
    if extra in raw:
        return
    with pytest.raises(ValidationError) as info:
        event_adapter.validate_python(raw | {extra: 1})
    fields = [p["field"] for p in field_errors(info.value.errors(), "events[7]")]
    assert fields == [f"events[7].{extra}"]


@given(
    sales,
    st.sampled_from(
        [
            ("quantity", 0),
            ("quantity", -3),
            ("quantity", 1.5),
            ("unit_price", 0),
            ("unit_price", float("nan")),
            ("sku", ""),
            ("sku", "has space"),
            ("market", "{tag}"),
            ("ts", "2026-01-01T10:00:00"),
            ("event_id", "x" * 129),
        ]
    ),
)
def test_each_bad_value_is_reported_on_its_field(raw: dict, bad: tuple) -> None:
    field, value = bad
    with pytest.raises(ValidationError) as info:
        event_adapter.validate_python(raw | {field: value})
    problems = field_errors(info.value.errors(), "events[0]")
    assert [p["field"] for p in problems] == [f"events[0].{field}"]


def test_batch_limits() -> None:
    with pytest.raises(ValidationError, match="at most 500"):
        PriceBatchIn.model_validate({"items": [{"sku": "A"}] * 501})
    with pytest.raises(ValidationError, match="at least 1"):
        PriceBatchIn.model_validate({"items": []})


@pytest.mark.parametrize(("value", "ok"), [(2, True), (2.0, True), (2.5, False), (True, False)])
def test_a_whole_number_may_be_written_with_a_zero_fraction(value: object, ok: bool) -> None:
    """JSON Schema's ``integer`` accepts ``2.0``, so the server does too (as 2); a
    fraction, a boolean or a string is still refused."""
    raw = {
        "type": "sale",
        "event_id": "e-1",
        "ts": "2026-01-01T10:00:00Z",
        "sku": "TEE-1",
        "market": "nyc",
        "quantity": value,
        "unit_price": 30.0,
    }
    if ok:
        event = event_adapter.validate_python(raw)
        assert event.quantity == 2 and type(event.quantity) is int
    else:
        with pytest.raises(ValidationError):
            event_adapter.validate_python(raw)
