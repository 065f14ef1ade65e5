"""Validation of a batch in :func:`service.intake.plan_batch`: the batch is validated in
one call over its list, and a batch holding an invalid event falls back to one call an
event. Either way each event gets exactly what validating it on its own gives: the same
model when it is valid, and a rejection naming its own index and field when it is not.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from service.auth import Caller
from service.intake import PlannedEvent, plan_batch
from service.pricebook import CatalogEntry, PriceBook
from service.problems import field_errors
from service.schemas import event_adapter
from service.settings import Role

TS = "2026-12-05T18:00:00+00:00"


def _book() -> PriceBook:
    book = PriceBook()
    for sku in ("TEE-1", "TEE-2"):
        book.catalog[sku] = CatalogEntry(sku, 30.0, "USD", ("nyc", "online"))
    return book


def _sale(n: int, **over: Any) -> dict[str, Any]:
    event = {
        "type": "sale",
        "event_id": f"s-{n}",
        "ts": TS,
        "sku": "TEE-1",
        "market": "nyc",
        "quantity": 1,
        "unit_price": 30.0,
    }
    return {**event, **over}


VALID: list[dict[str, Any]] = [
    _sale(0),
    {"type": "return", "event_id": "r-1", "ts": TS, "sku": "TEE-1", "market": "nyc",
     "quantity": 1, "sale_event_id": "s-0"},
    {"type": "restock", "event_id": "k-1", "ts": TS, "sku": "TEE-2", "market": "online",
     "quantity": 5},
    {"type": "announcement", "event_id": "a-1", "ts": TS, "sku": ["TEE-1", "TEE-2"],
     "market": "nyc", "reach": 5000},
    {"type": "claim", "event_id": "c-1", "ts": TS, "sku": "TEE-2", "market": "nyc"},
    {"type": "listing", "event_id": "l-1", "ts": "2026-12-05T18:00:00Z", "sku": "TEE-1",
     "market": "nyc", "weight": 0.5},
]  # fmt: skip
"""One valid event of each kind."""

INVALID: list[Any] = [
    _sale(1, quantity="3"),
    _sale(2, quantity=True),
    _sale(3, unit_price=-1.0),
    {k: v for k, v in _sale(4).items() if k != "ts"},
    _sale(5, ts="2026-12-05T18:00:00"),
    _sale(6, type="gift"),
    _sale(7, extra="x"),
    "not an event",
]
"""Events the schemas refuse, each for its own reason."""


def _alone(index: int, raw: Any) -> str:
    """The rejection text of ``raw`` validated on its own at ``index``."""
    try:
        event_adapter.validate_python(raw)
    except ValidationError as exc:
        problems = field_errors(exc.errors(include_url=False), f"events[{index}]")
        return "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    raise AssertionError(f"{raw!r} is valid")


def test_a_valid_batch_plans_each_event_as_validated_on_its_own() -> None:
    planned, results = plan_batch(VALID, _book(), Caller(Role.operator, "k"), now=0.0)
    assert results == [None] * len(VALID)
    assert [p.position for p in planned] == list(range(len(VALID)))
    for plan, raw in zip(planned, VALID, strict=True):
        assert isinstance(plan, PlannedEvent)
        assert plan.event == event_adapter.validate_python(raw)
        assert type(plan.event) is type(event_adapter.validate_python(raw))


def test_invalid_events_are_rejected_each_naming_its_own_index_and_the_rest_planned() -> None:
    # Interleave: invalid events at odd positions, valid ones at even positions.
    batch: list[Any] = []
    for good, bad in zip(VALID, INVALID, strict=False):
        batch += [good, bad]
    batch += INVALID[len(VALID) :]
    planned, results = plan_batch(batch, _book(), Caller(Role.operator, "k"), now=0.0)
    assert [p.position for p in planned] == [i for i in range(0, 2 * len(VALID), 2)]
    for i, raw in enumerate(batch):
        if raw in VALID:
            assert results[i] is None
            continue
        result = results[i]
        assert result is not None and result["status"] == "rejected"
        assert result["index"] == i
        assert result["detail"] == _alone(i, raw)
        assert f"events[{i}]." in result["detail"] or result["detail"].startswith(f"events[{i}]")
        others = [f"events[{j}]" for j in range(len(batch)) if j != i]
        assert not any(o in result["detail"] for o in others)
