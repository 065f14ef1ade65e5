"""pricing.intensity: the micro-event index matches its formula, decays, and rejects bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.exceptions import InputError
from pricing.intensity import (
    EVENT_TYPES,
    IntensityParams,
    build_intensity_index,
    forecast_intensity,
    market_rollup,
    validate_events,
)

T0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")


def _events(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    return df


def _random_events(n: int, seed: int, hours: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "ts": T0 + pd.to_timedelta(rng.uniform(0, hours * 3600, n), unit="s"),
            "type": rng.choice(np.array(EVENT_TYPES), n),
            "sku": rng.choice(np.array(["a", "b", "c"]), n),
            "market": rng.choice(np.array(["nyc", "la"]), n),
            "quantity": rng.integers(0, 5, n).astype(float),
            "reach": rng.uniform(0, 5000, n),
            "count": rng.integers(1, 4, n),
            "weight": rng.uniform(0.5, 2, n),
        }
    )


def _reference_index(events: pd.DataFrame, params: IntensityParams, window: int) -> pd.DataFrame:
    """Direct, loop-by-loop evaluation of the documented formula (slow, obvious)."""
    first = events["ts"].min().floor("h")
    last = events["ts"].max().floor("h")
    hours = pd.date_range(first, last, freq="h")
    rows = []
    for (sku, market), grp in events.groupby(["sku", "market"]):
        units = np.zeros(len(hours))
        for _, e in grp[grp["type"] == "sale"].iterrows():
            units[int((e["ts"].floor("h") - first) / pd.Timedelta(hours=1))] += e["quantity"]
        for i, h in enumerate(hours):
            t_end = h + pd.Timedelta(hours=1)
            value = 0.0
            for _, e in grp.iterrows():
                lag_buckets = int((h - e["ts"].floor("h")) / pd.Timedelta(hours=1))
                if not 0 <= lag_buckets < window:
                    continue
                size = {
                    "sale": e["quantity"],
                    "announcement": math.log1p(e["reach"]),
                    "claim": e["count"],
                    "listing": e["weight"],
                }[e["type"]]
                age = (t_end - e["ts"]) / pd.Timedelta(hours=1)
                value += params.weight(e["type"]) * size * 2 ** (-age / params.half_life(e["type"]))
            past = units[max(0, i - params.spike_baseline_hours) : i]
            mean = past.mean() if len(past) else 0.0
            var = past.var() if len(past) > 1 else 0.0
            z = (units[i] - mean) / math.sqrt(var + mean + 1)
            value += params.weight_spike * min(params.spike_cap, max(0.0, z))
            rows.append((sku, market, h, value))
    return pd.DataFrame(rows, columns=["sku", "market", "hour", "intensity"])


def test_vectorised_index_matches_the_formula_evaluated_event_by_event() -> None:
    events = _random_events(120, seed=1)
    params = IntensityParams(spike_baseline_hours=6)
    got = build_intensity_index(events, window_hours=24, params=params)
    want = _reference_index(events, params, window=24)
    merged = got.merge(want, on=["sku", "market", "hour"], suffixes=("", "_ref"), how="outer")
    assert len(merged) == len(got) == len(want)
    np.testing.assert_allclose(merged["intensity"], merged["intensity_ref"], rtol=1e-9, atol=1e-9)


def test_components_add_up_and_columns_are_as_documented() -> None:
    idx = build_intensity_index(_random_events(200, seed=2))
    assert list(idx.columns) == ["sku", "market", "hour", "intensity", *EVENT_TYPES, "spike"]
    parts = idx[[*EVENT_TYPES, "spike"]].sum(axis=1)
    np.testing.assert_allclose(parts, idx["intensity"], rtol=1e-12)
    assert str(idx["hour"].dt.tz) == "UTC"
    assert idx.equals(idx.sort_values(["sku", "market", "hour"]).reset_index(drop=True))


def test_an_announcement_decays_with_its_half_life_and_is_zero_after_the_window() -> None:
    params = IntensityParams(half_life_announcement=10.0, weight_announcement=2.0)
    ev = _events(
        [
            {
                "ts": "2026-03-01 00:00",
                "type": "announcement",
                "sku": "a",
                "market": "nyc",
                "reach": math.e**3 - 1,
            }
        ]
    )
    idx = build_intensity_index(ev, window_hours=24, params=params, end=T0 + pd.Timedelta(hours=40))
    want = [2.0 * 3.0 * 2 ** (-(h + 1) / 10.0) if h < 24 else 0.0 for h in range(41)]
    np.testing.assert_allclose(idx["announcement"], want, rtol=1e-10, atol=1e-12)
    assert (idx["intensity"].iloc[24:] == 0).all()


def test_events_before_start_count_in_the_first_hours() -> None:
    ev = _events(
        [
            {"ts": "2026-03-01 00:30", "type": "claim", "sku": "a", "market": "nyc", "count": 2},
            {"ts": "2026-03-01 10:00", "type": "claim", "sku": "a", "market": "nyc", "count": 1},
        ]
    )
    full = build_intensity_index(ev)
    late = build_intensity_index(ev, start=T0 + pd.Timedelta(hours=5))
    tail = full[full["hour"] >= late["hour"].min()].reset_index(drop=True)
    np.testing.assert_allclose(late["intensity"], tail["intensity"], rtol=1e-12)


def test_spike_is_bounded_on_a_zero_baseline_and_zero_at_a_steady_rate() -> None:
    rows = [{"ts": "2026-03-01 12:10", "type": "sale", "sku": "a", "market": "m", "quantity": 5.0}]
    rows += [
        {
            "ts": str(T0 + pd.Timedelta(hours=h, minutes=5)),
            "type": "sale",
            "sku": "s",
            "market": "m",
            "quantity": 2.0,
        }
        for h in range(30)
    ]
    idx = build_intensity_index(_events(rows), params=IntensityParams(weight_spike=1.0))
    quiet = idx[(idx["sku"] == "a") & (idx["hour"] == T0 + pd.Timedelta(hours=12))]
    # zero mean, zero variance: z = (5 - 0) / sqrt(0 + 0 + 1) = 5
    assert quiet["spike"].item() == pytest.approx(5.0)
    steady = idx[(idx["sku"] == "s") & (idx["hour"] >= T0 + pd.Timedelta(hours=2))]
    assert (steady["spike"] == 0).all()


@settings(max_examples=30, deadline=None)
@given(st.floats(0, 50), st.floats(0, 50), st.sampled_from(EVENT_TYPES))
def test_each_component_is_monotone_in_each_events_size(
    size: float, extra: float, etype: str
) -> None:
    column = {"sale": "quantity", "announcement": "reach", "claim": "count", "listing": "weight"}
    base = _random_events(30, seed=3, hours=20)
    base.loc[0, "type"] = etype
    base[column[etype]] = base[column[etype]].astype(float)
    bigger = base.copy()
    base.loc[0, column[etype]] = size
    bigger.loc[0, column[etype]] = size + extra
    a = build_intensity_index(base, window_hours=24)
    b = build_intensity_index(bigger, window_hours=24)
    for part in EVENT_TYPES:
        assert (b[part].to_numpy() >= a[part].to_numpy() - 1e-12).all()
    # The total rises in the event's own hour (the spike baseline of later hours may rise too).
    own = a["hour"] == base.loc[0, "ts"].floor("h")
    same_key = (a["sku"] == base.loc[0, "sku"]) & (a["market"] == base.loc[0, "market"])
    sel = (own & same_key).to_numpy()
    assert b["intensity"].to_numpy()[sel] >= a["intensity"].to_numpy()[sel] - 1e-12


def test_market_rollup_sums_over_skus() -> None:
    idx = build_intensity_index(_random_events(150, seed=4))
    roll = market_rollup(idx)
    for market, grp in idx.groupby("market"):
        mine = roll[roll["market"] == market]
        np.testing.assert_allclose(mine["intensity"], grp.groupby("hour")["intensity"].sum())
        assert (mine["n_skus"] == grp["sku"].nunique()).all()
    with pytest.raises(InputError, match="missing column"):
        market_rollup(idx.drop(columns=["market"]))


def test_forecast_intensity_is_the_half_life_decay() -> None:
    got = forecast_intensity([4.0, 1.0], 3, [2.0, 1.0])
    np.testing.assert_allclose(got, [[4.0, 4 * 2**-0.5, 2.0], [1.0, 0.5, 0.25]])
    assert forecast_intensity(3.0, [0.0, 10.0], 10.0).tolist() == [[3.0, 1.5]]
    with pytest.raises(InputError, match="half_life"):
        forecast_intensity([1.0], 2, 0.0)
    with pytest.raises(InputError, match="current"):
        forecast_intensity([-1.0], 2, 1.0)


# ---------------------------------------------------------------- bad input


def _one_sale() -> pd.DataFrame:
    return _events(
        [{"ts": "2026-03-01 01:00", "type": "sale", "sku": "a", "market": "m", "quantity": 1.0}] * 4
    )


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d.drop(columns=["market"]), r"missing required column\(s\) \['market'\]"),
        (lambda d: d.drop(columns=["quantity"]), r"type 'sale' need column 'quantity'"),
        (
            lambda d: d.assign(type=["sale", "tweet", "sale", "sale"]),
            r"'type'.*\['tweet'\].*rows \[1\]",
        ),
        (
            lambda d: d.assign(quantity=[1.0, 1.0, -2.0, 1.0]),
            r"'quantity' has negative.*rows \[2\]",
        ),
        (lambda d: d.assign(quantity=[np.nan, 1.0, 1.0, 1.0]), r"'quantity' has NaN.*rows \[0\]"),
        (
            lambda d: d.assign(quantity=[1.0, np.inf, 1.0, 1.0]),
            r"'quantity' has NaN/inf.*rows \[1\]",
        ),
        (lambda d: d.assign(ts=d["ts"].dt.tz_localize(None)), r"'ts' must hold zoned"),
        (lambda d: d.assign(sku=["a", "", "a", "a"]), r"'sku' is empty.*rows \[1\]"),
        (lambda d: d.assign(unit_price=[1.0, 0.0, 2.0, 2.0]), r"'unit_price'.*rows \[1\]"),
    ],
)
def test_bad_events_raise_naming_column_and_rows(mutate, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=pattern):
        build_intensity_index(mutate(_one_sale()))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 19), st.floats(-1e6, -1e-9))
def test_any_negative_quantity_is_reported_with_its_row_label(row: int, value: float) -> None:
    df = _events(
        [{"ts": "2026-03-01 01:00", "type": "sale", "sku": "a", "market": "m", "quantity": 1.0}]
        * 20
    )
    df.index = [f"r{i}" for i in range(20)]
    df.loc[f"r{row}", "quantity"] = value
    with pytest.raises(InputError, match=rf"rows \['r{row}'\]"):
        validate_events(df)


def test_other_types_may_leave_a_size_column_empty() -> None:
    df = _events(
        [
            {"ts": "2026-03-01 01:00", "type": "sale", "sku": "a", "market": "m", "quantity": 1.0},
            {"ts": "2026-03-01 02:00", "type": "claim", "sku": "a", "market": "m"},
        ]
    )
    assert validate_events(df) is df
    assert build_intensity_index(df)["claim"].max() > 0


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        ["weight_sale", "weight_claim", "half_life_sale", "half_life_listing", "spike_cap"]
    ),
    st.one_of(st.floats(max_value=-1e-9), st.just(float("nan")), st.just(float("inf"))),
)
def test_intensity_params_reject_non_finite_or_negative(field: str, value: float) -> None:
    with pytest.raises(InputError, match=field):
        IntensityParams(**{field: value})


@pytest.mark.parametrize("window", [0, 12, 73, 24.5])
def test_window_outside_24_to_72_hours_is_rejected(window) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"window_hours must be an integer in \[24, 72\]"):
        build_intensity_index(_one_sale(), window_hours=window)


def test_half_hour_buckets_give_the_same_decay_curve() -> None:
    ev = _events(
        [{"ts": "2026-03-01 00:00", "type": "claim", "sku": "a", "market": "m", "count": 1}]
    )
    idx = build_intensity_index(ev, freq="30min", end=T0 + pd.Timedelta(hours=3))
    ages = np.arange(1, 8) * 0.5
    np.testing.assert_allclose(idx["claim"], 0.25 * 2 ** (-ages / 12.0))
