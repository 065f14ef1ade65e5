"""How dropprice compares money: at the currency's minor unit, never as raw floats.

**The rule.** A price (or floor, ceiling, ladder step, unit cost) in a config or an API
call is a decimal in the currency's minor unit: cents for USD or EUR, whole yen for JPY,
thousandths for KWD (ISO 4217; :func:`minor_units`). Before any comparison or bound check
an amount is read as the decimal it is written as (its shortest ``repr``, so the YAML's
``19.99`` is ``19.99`` and not ``19.989999999999998...``) and rounded half-up to the minor
unit (:func:`to_minor`). Two amounts are equal when they round to the same minor unit;
``price <= ceiling`` holds when the rounded price is at most the rounded ceiling
(:func:`compare_money`). So a list price of ``50.0`` does not break a ceiling of
``49.99999999999999``: both are 5,000 cents.

Float noise from arithmetic (``0.1 + 0.2``, ``19.99 * 3``) is many orders of magnitude
below a minor unit, so it never flips a comparison; a difference of a whole minor unit
always does. Where the currency is not known (a guardrail block in ``defaults.yaml``, a
drop's or an arm's) amounts compare at the cent.

Example:
    >>> to_minor(19.99), to_minor(49.99999999999999), to_minor(1.005)
    (1999, 5000, 101)
    >>> compare_money(50.0, 49.99999999999999), compare_money(50.01, 50.0)
    (0, 1)
    >>> to_minor(1500.4, digits=minor_units("JPY"))
    1500
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["CENT_DIGITS", "compare_money", "minor_units", "to_minor"]

CENT_DIGITS = 2
"""Minor-unit decimals used when the currency is not known (cents)."""

# ISO 4217 currencies whose minor unit is not 2 (the rest use cents).
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_units(currency: str) -> int:
    """Decimals a price in ``currency`` may carry (ISO 4217 minor unit; 2 when unlisted).

    Example:
        >>> minor_units("USD"), minor_units("JPY"), minor_units("KWD")
        (2, 0, 3)
    """
    return _MINOR_UNITS.get(currency.upper(), CENT_DIGITS)


def to_minor(amount: float, *, digits: int = CENT_DIGITS) -> int:
    """``amount`` in minor units: its shortest decimal rounded half-up to ``digits`` decimals.

    Args:
        amount: a finite amount in major units (dollars, euros, yen).
        digits: decimals of the minor unit (:func:`minor_units` of the currency).

    Returns:
        The whole number of minor units (``19.99`` -> ``1999`` at cents).

    Raises:
        ValueError: ``amount`` is not a finite number.

    Example:
        >>> to_minor(19.99), to_minor(0.125), to_minor(2.5, digits=0)
        (1999, 13, 3)
    """
    value = float(amount)
    if not math.isfinite(value):
        raise ValueError(f"money must be a finite number, got {amount!r}")
    scaled = Decimal(repr(value)).scaleb(digits)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_UP))


def compare_money(a: float, b: float, *, digits: int = CENT_DIGITS) -> int:
    """``-1``, ``0`` or ``1`` as ``a`` is below, equal to or above ``b`` in minor units.

    An infinite bound (no ceiling is ``inf``) compares as a float: above every amount.

    Args:
        a, b: amounts in major units (``inf`` stands for a missing ceiling).
        digits: decimals of the minor unit (:func:`minor_units` of the currency).

    Raises:
        ValueError: either amount is NaN.

    Example:
        >>> compare_money(50.0, 49.99999999999999), compare_money(19.98, 19.99)
        (0, -1)
        >>> compare_money(100.0, math.inf)
        -1
    """
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        raise ValueError(f"money must not be NaN, got {a!r} and {b!r}")
    if math.isinf(x) or math.isinf(y):
        return (x > y) - (x < y)
    ma, mb = to_minor(x, digits=digits), to_minor(y, digits=digits)
    return (ma > mb) - (ma < mb)
