"""The money rule (pricing.money): amounts compare at the currency's minor unit."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pricing.money import compare_money, minor_units, to_minor

cents = st.integers(min_value=0, max_value=100_000_000)


@given(c=cents)
def test_a_price_written_to_the_cent_is_that_many_cents(c: int) -> None:
    assert to_minor(c / 100) == c
    assert to_minor(float(f"{c // 100}.{c % 100:02d}")) == c


@example(a=5000, b=5000, noise=-1)  # 49.99999999999999 against 50.0, as in issue 22
@given(a=cents, b=cents, noise=st.integers(-3, 3))
def test_float_noise_never_flips_a_comparison(a: int, b: int, noise: int) -> None:
    # a few ulps either way, as arithmetic on decimals leaves them
    x = a / 100
    for _ in range(abs(noise)):
        x = math.nextafter(x, math.copysign(math.inf, noise))
    expected = (a > b) - (a < b)
    assert compare_money(x, b / 100) == expected
    assert compare_money(b / 100, x) == -expected


def test_half_a_minor_unit_rounds_up_as_written() -> None:
    # 1.005 and 2.675 are a hair below the half as binary floats; as written they are halves.
    assert (to_minor(1.005), to_minor(2.675), to_minor(0.125)) == (101, 268, 13)
    assert compare_money(50.0, 49.99999999999999) == 0
    assert compare_money(50.01, 50.0) == 1


def test_minor_unit_of_the_currency() -> None:
    assert (minor_units("USD"), minor_units("jpy"), minor_units("KWD")) == (2, 0, 3)
    assert compare_money(1500.4, 1500.0, digits=minor_units("JPY")) == 0
    assert compare_money(1.002, 1.001, digits=minor_units("KWD")) == 1
    assert compare_money(1.002, 1.001) == 0


def test_a_missing_bound_is_infinite_and_nan_is_refused() -> None:
    assert compare_money(1_000_000.0, math.inf) == -1
    assert compare_money(math.inf, math.inf) == 0
    with pytest.raises(ValueError, match="finite"):
        to_minor(math.inf)
    with pytest.raises(ValueError, match="NaN"):
        compare_money(math.nan, 1.0)
