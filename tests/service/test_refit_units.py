"""Pure pieces of the re-fit: ladders, horizons, guardrail specs, stream decoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from service.codec import events_frame
from service.config.models import DropConfig, DropWindow, Guardrails, SkuConfig
from service.drops import drop_horizon, grid_ladders, guardrail_spec, sku_ladder
from service.store import StreamEvent

T0 = datetime(2027, 1, 1, 18, tzinfo=UTC)
SKUS = tuple(
    SkuConfig(sku=f"S{i}", category="c", list_price=p, unit_cost=c, inventory={"m": 5})
    for i, (p, c) in enumerate([(19.99, 6.5), (12.99, 0.0), (29.99, 31.0)])
)
DROP = DropConfig(
    id="d",
    markets=("m",),
    period_minutes=30,
    windows=(
        DropWindow(start=T0, end=T0 + timedelta(hours=2)),
        DropWindow(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1)),
    ),
    skus=SKUS,
)


@pytest.mark.parametrize(
    "rails",
    [
        Guardrails(price_ending=0.99),
        Guardrails(floor=9.99, ceiling=39.99, price_ending=0.99),
        Guardrails(),
        Guardrails(floor=5.0, ceiling=50.0, allow_below_cost=True),
    ],
)
def test_batched_ladders_equal_the_per_sku_ladder(rails: Guardrails) -> None:
    horizon = drop_horizon(DROP, T0 - timedelta(hours=3))
    assert horizon is not None
    specs = [guardrail_spec(rails, s, DROP, horizon) for s in SKUS]
    grids = grid_ladders(specs, [rails] * len(SKUS), list(SKUS))
    for grid, spec, sku in zip(grids, specs, SKUS, strict=True):
        np.testing.assert_allclose(np.unique(grid), sku_ladder(spec, rails, sku))
        lo, hi = spec.bounds
        assert grid.min() >= lo - 1e-9 and grid.max() <= hi + 1e-9


def test_horizon_is_the_open_window_from_now_else_the_next_one() -> None:
    before = drop_horizon(DROP, T0 - timedelta(hours=5))
    assert before is not None and before.start == T0 and before.periods == 4
    inside = drop_horizon(DROP, T0 + timedelta(minutes=70))
    assert inside is not None
    assert inside.start == T0 + timedelta(minutes=60) and inside.periods == 2
    between = drop_horizon(DROP, T0 + timedelta(hours=3))
    assert between is not None and between.start == T0 + timedelta(days=1)
    assert between.last_window and between.periods == 2
    assert drop_horizon(DROP, T0 + timedelta(days=2)) is None


def test_no_touch_counts_from_the_window_opening() -> None:
    rails = Guardrails(no_touch_minutes=45)
    full = drop_horizon(DROP, T0 - timedelta(hours=1))
    late = drop_horizon(DROP, T0 + timedelta(minutes=31))
    assert full is not None and late is not None
    assert guardrail_spec(rails, SKUS[0], DROP, full).no_touch_periods == 2
    assert guardrail_spec(rails, SKUS[0], DROP, late).no_touch_periods == 1


def test_stream_entries_decode_to_typed_events() -> None:
    entries = [
        StreamEvent("dp:{A}:events", "A", "1767290400000-0", {
            "type": "sale", "event_id": "e1", "market": "m", "ts": "2026-01-01T10:00:00+01:00",
            "quantity": "2", "unit_price": "9.5", "charged_price": "9.99"}),
        StreamEvent("dp:{A}:events", "A", "1767290400001-0", {
            "type": "sale", "event_id": "e2", "market": "m", "quantity": "1",
            "unit_price": "", "charged_price": "9.99"}),
    ]  # fmt: skip
    frame = events_frame(entries)
    assert frame["unit_price"].tolist() == [9.5, 9.99]  # POS-reported, else charged
    assert frame["ts"].iloc[0] == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert frame["ts"].iloc[1] == datetime.fromtimestamp(1767290400.001, UTC)
    assert frame["sku"].tolist() == ["A", "A"] and frame["quantity"].tolist() == [2.0, 1.0]


def test_device_choice_errors_say_what_is_available() -> None:
    from service.exceptions import RefitError
    from service.refit import describe_devices, select_devices

    cpu = select_devices("cpu")
    assert describe_devices(cpu).startswith("cpu:")
    with pytest.raises(RefitError, match="must be one of cpu, gpu, auto, got 'tpu'"):
        select_devices("tpu")
    import jax

    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(RefitError, match="--device gpu: JAX sees no gpu device"):
            select_devices("gpu")


def test_the_fit_regressor_is_the_stimulus_part_of_the_index() -> None:
    import pandas as pd

    from pricing.events import EVENT_KINDS, STIMULUS_KINDS
    from pricing.intensity import build_intensity_index
    from service.refit.exogenous import exogenous_index

    ts = pd.Timestamp(T0)
    sizes = {"quantity": 4.0, "reach": 900.0, "count": 3.0, "weight": 2.0}
    rows = [
        {"ts": ts, "type": k, "sku": "S0", "market": "m", EVENT_KINDS[k].size_field: v}
        for k in ("sale", "announcement", "claim", "listing")
        for v in [sizes[EVENT_KINDS[k].size_field]]
    ]
    index = build_intensity_index(pd.DataFrame(rows), end=ts + pd.Timedelta(hours=3))
    exogenous = exogenous_index(index)
    assert exogenous is not None
    # Sales and the velocity spike count the demand being fitted: never in the regressor.
    expected = index[list(STIMULUS_KINDS)].sum(axis=1)
    assert exogenous["intensity"].tolist() == pytest.approx(expected.tolist())
    assert (index["sale"] > 0).all() and (exogenous["intensity"] < index["intensity"]).all()
