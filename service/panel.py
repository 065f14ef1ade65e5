"""The hourly demand panel the re-fit learns from, built from raw events.

The events stream is the only record of what happened at the till. This module
turns a table of events (one row per event, as read back from Redis) into the
panel :func:`pricing.model.fit_elasticity` expects: one row per
``(sku, market, period)`` with the price in effect, the units sold and whether
the shelf was empty at the end of the period.

Rules (each one a deliberate choice):

- **Idempotent by** ``event_id``: a replayed event (a crash re-reads the stream,
  a POS retries) appears once. Rows without an ``event_id`` are refused.
- **Quantity** is the units sold in the period (``sale`` events); returns and
  restocks change the stock but are not demand.
- **Price** is the quantity-weighted mean ``unit_price`` of the period's sales.
  A period without a sale charged the last price seen (carried forward, then
  backward for periods before the first sale), else the SKU's list price.
- **Stock** is rebuilt backwards from the units left now:
  ``left_end(h) = left_now + Σ_{events after h} (sold − returned − restocked)``.
  A period *ended sold out* when ``left_end(h) == 0`` (its sales are censored:
  demand was at least what sold, see MATH.md); periods that sold nothing and
  ended with nothing left are dropped (the shelf was empty, so zero sales say
  nothing about demand).
- **Span**: a pair's periods run from its first sale to ``end`` (exclusive; the
  re-fit passes the start of the hour under way, whose sales are still coming in).
  Events at or after ``end`` are left out of the periods but still count in the
  stock rebuilt from the units left now.

Example:
    >>> panel = build_panel(events, inventory_now={("CMX-1", "bk"): 12})  # doctest: +SKIP
    >>> panel.columns.tolist()  # doctest: +SKIP
    ['sku', 'market', 'period', 'price', 'quantity', 'sold_out']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pricing.events import EVENT_KINDS, STOCK_KINDS
from service.exceptions import PanelError

__all__ = ["EVENT_COLUMNS", "PANEL_COLUMNS", "attach_intensity", "build_panel", "dedupe_events"]

EVENT_COLUMNS = ("event_id", "ts", "type", "sku", "market")
"""Columns every events table must carry (plus ``quantity``/``unit_price`` for sales)."""
PANEL_COLUMNS = ("sku", "market", "period", "price", "quantity", "sold_out")
"""Columns of the panel, in order (``intensity`` is added by :func:`attach_intensity`)."""

_STOCK_SIGN = {kind: -EVENT_KINDS[kind].stock_sign for kind in STOCK_KINDS}
"""How an event moves ``left_end`` backwards in time (a sale after h means more was left at
h): the opposite of its stock movement in :data:`pricing.events.EVENT_KINDS`."""


def dedupe_events(events: pd.DataFrame) -> pd.DataFrame:
    """Keep the first row of each ``(event_id, sku)`` (in stream order).

    An announcement naming several SKUs is one event spread over several rows (one
    per SKU), so the SKU is part of the identity of a row.

    Raises:
        PanelError: the table has no ``event_id`` column or a row has none.
    """
    if "event_id" not in events.columns:
        raise PanelError(f"events need an 'event_id' column, got columns {list(events.columns)}")
    missing = events["event_id"].isna()
    if missing.any():
        rows = events.index[missing].tolist()[:10]
        raise PanelError(f"events without an event_id at rows {rows}: every event must carry one")
    subset = ["event_id", "sku"] if "sku" in events.columns else ["event_id"]
    return events.drop_duplicates(subset, keep="first")


def _check(events: pd.DataFrame) -> None:
    absent = [c for c in EVENT_COLUMNS if c not in events.columns]
    if absent:
        raise PanelError(
            f"events table lacks column(s) {absent}; required {list(EVENT_COLUMNS)}, "
            f"got {list(events.columns)}"
        )
    ts = events["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise PanelError(f"events 'ts' must be tz-aware timestamps, got dtype {ts.dtype}")
    sales = events["type"] == "sale"
    if sales.any():
        for col in ("quantity", "unit_price"):
            if col not in events.columns:
                raise PanelError(f"sale events need a {col!r} column, got {list(events.columns)}")
        q = pd.to_numeric(events.loc[sales, "quantity"], errors="coerce")
        p = pd.to_numeric(events.loc[sales, "unit_price"], errors="coerce")
        bad = events.index[sales][~(np.isfinite(q) & (q >= 0) & np.isfinite(p) & (p > 0))]
        if len(bad):
            raise PanelError(
                f"sale events need quantity >= 0 and unit_price > 0 (finite), "
                f"offending rows {bad.tolist()[:10]}"
            )


def build_panel(
    events: pd.DataFrame,
    *,
    inventory_now: Mapping[tuple[str, str], int] | None = None,
    list_prices: Mapping[str, float] | None = None,
    end: pd.Timestamp | None = None,
    freq: str = "h",
) -> pd.DataFrame:
    """Build the ``(sku, market, period)`` panel from a table of events.

    Args:
        events: one row per event with ``event_id``, ``ts`` (tz-aware), ``type``,
            ``sku``, ``market`` and, for ``sale``/``return``/``restock``, ``quantity``
            (sales also ``unit_price``). Other types (announcements, claims, listings)
            are ignored here; they feed the intensity index.
        inventory_now: units left now per ``(sku, market)``; pairs absent from it are
            never marked sold out.
        list_prices: price per SKU for pairs whose price is never observed.
        end: cut-off (exclusive); default the period after the last event.
        freq: period length as a pandas offset alias (``"h"`` for hourly).

    Returns:
        DataFrame with :data:`PANEL_COLUMNS`: ``period`` tz-aware UTC period starts,
        ``price`` float, ``quantity`` float (units sold), ``sold_out`` bool. Sorted by
        ``(sku, market, period)``.

    Raises:
        PanelError: a required column is missing, ``ts`` has no zone, a sale has a
            negative quantity or a non-positive price, or an ``event_id`` is missing.
    """
    empty = pd.DataFrame(
        {
            "sku": pd.Series(dtype=object),
            "market": pd.Series(dtype=object),
            "period": pd.Series(dtype="datetime64[ns, UTC]"),
            "price": pd.Series(dtype=float),
            "quantity": pd.Series(dtype=float),
            "sold_out": pd.Series(dtype=bool),
        }
    )
    if events.empty:
        return empty
    _check(events)
    ev = dedupe_events(events)
    ev = ev[ev["type"].isin(STOCK_KINDS)]
    ev = ev[ev["sku"].notna() & ev["market"].notna()]
    if ev.empty:
        return empty
    ts = ev["ts"].dt.tz_convert("UTC")
    stock = pd.DataFrame(
        {
            "sku": ev["sku"].astype(str).to_numpy(),
            "market": ev["market"].astype(str).to_numpy(),
            "period": ts.dt.floor(freq).array,
            "type": ev["type"].to_numpy(),
            "quantity": pd.to_numeric(ev["quantity"], errors="coerce").fillna(0.0).to_numpy(),
        }
    )
    stock["period"] = pd.to_datetime(stock["period"], utc=True)
    is_sale = stock["type"].eq("sale").to_numpy()
    unit_price = (
        pd.to_numeric(ev["unit_price"], errors="coerce").to_numpy()
        if "unit_price" in ev
        else np.full(len(ev), np.nan)
    )
    stock["sold"] = np.where(is_sale, stock["quantity"], 0.0)
    stock["revenue"] = np.where(is_sale, stock["quantity"] * np.nan_to_num(unit_price), 0.0)
    stock["delta"] = stock["type"].map(_STOCK_SIGN).fillna(0).to_numpy() * stock["quantity"]
    # Price seen on a sale even when quantity is 0 (a zero-unit sale still states a price).
    stock["price_seen"] = np.where(is_sale, unit_price, np.nan)

    keys = ["sku", "market", "period"]
    agg = stock.groupby(keys, sort=True).agg(
        sold=("sold", "sum"),
        revenue=("revenue", "sum"),
        delta=("delta", "sum"),
        price_seen=("price_seen", "mean"),
    )
    first_sale = stock[is_sale].groupby(["sku", "market"])["period"].min()
    if first_sale.empty:
        return empty
    if end is None:
        end = stock["period"].max() + pd.tseries.frequencies.to_offset(freq)
    end = pd.Timestamp(end)
    end = end.tz_convert("UTC") if end.tzinfo else end.tz_localize("UTC")

    # Every period of every pair from its first sale to ``end``, built without a loop.
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    starts = pd.DatetimeIndex(pd.to_datetime(first_sale, utc=True))
    counts = np.maximum(0, np.ceil(np.asarray((end - starts) / step, dtype=float)))
    counts = counts.astype(np.int64)
    if counts.sum() == 0:
        return empty
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    grid = pd.DataFrame(
        {
            "sku": np.repeat(first_sale.index.get_level_values(0).to_numpy(), counts),
            "market": np.repeat(first_sale.index.get_level_values(1).to_numpy(), counts),
            "period": np.repeat(starts, counts) + offsets * step,
        }
    )
    panel = grid.merge(agg.reset_index(), on=keys, how="left")
    panel[["sold", "revenue", "delta"]] = panel[["sold", "revenue", "delta"]].fillna(0.0)

    sold = panel["sold"].where(panel["sold"] > 0)
    panel["price"] = (panel["revenue"] / sold).fillna(panel["price_seen"])
    panel["price"] = panel.groupby(["sku", "market"], sort=False)["price"].ffill()
    panel["price"] = panel.groupby(["sku", "market"], sort=False)["price"].bfill()
    if list_prices:
        fallback = panel["sku"].map(list_prices)
        panel["price"] = panel["price"].fillna(fallback)
    panel = panel[panel["price"].notna() & (panel["price"] > 0)]

    panel["sold_out"] = False
    if inventory_now:
        pair = list(zip(panel["sku"], panel["market"], strict=True))
        # Events at or after ``end`` (the period under way) moved the stock too.
        late = stock[stock["period"] >= end].groupby(["sku", "market"])["delta"].sum()
        late_map = {(s_, m_): float(v) for (s_, m_), v in late.items()}
        now = pd.Series(
            [inventory_now.get(k, np.nan) + late_map.get(k, 0.0) for k in pair],
            index=panel.index,
            dtype=float,
        )
        # left_end(h) = left_now + sum of deltas strictly after h (reverse cumulative sum).
        after = (
            panel.iloc[::-1].groupby(["sku", "market"], sort=False)["delta"].cumsum().iloc[::-1]
            - panel["delta"]
        )
        left_end = now + after
        known = now.notna()
        panel["sold_out"] = (known & (left_end <= 0) & (panel["sold"] > 0)).to_numpy()
        # On sale during the period when something was left at its end or something sold
        # (a restock inside the period counts from that period on).
        keep = ~known | (left_end > 0) | (panel["sold"] > 0)
        panel = panel[keep.to_numpy()]
    panel = panel.rename(columns={"sold": "quantity"})
    out = panel[list(PANEL_COLUMNS)].sort_values(["sku", "market", "period"])
    return out.reset_index(drop=True)


def attach_intensity(panel: pd.DataFrame, index: pd.DataFrame | None) -> pd.DataFrame:
    """Join the micro-event index onto the panel (``intensity`` 0 where it has no value).

    Args:
        panel: output of :func:`build_panel`.
        index: long table ``sku, market, hour, intensity`` from
            :func:`pricing.intensity.build_intensity_index`, or ``None``.

    Returns:
        The panel with a float ``intensity`` column.
    """
    out = panel.copy()
    if index is None or index.empty:
        out["intensity"] = 0.0
        return out
    idx = index[["sku", "market", "hour", "intensity"]].rename(columns={"hour": "period"})
    idx = idx.assign(period=pd.to_datetime(idx["period"], utc=True))
    out = out.merge(idx, on=["sku", "market", "period"], how="left")
    out["intensity"] = out["intensity"].astype(float).fillna(0.0)
    out.loc[~np.isfinite(out["intensity"]), "intensity"] = 0.0
    return out


def frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Events table from decoded stream records (one dict per event).

    ``sku`` given as a list (an announcement for several SKUs) becomes one row per
    SKU; ``ts`` strings are parsed as ISO 8601 with their zone and converted to UTC.
    """
    if not records:
        return pd.DataFrame(columns=list(EVENT_COLUMNS))
    df = pd.DataFrame.from_records(records)
    if "event_id" in df.columns:
        df = df.drop_duplicates("event_id", keep="first")
    for col in EVENT_COLUMNS:
        if col not in df.columns:
            df[col] = None
    if "skus" in df.columns:
        df["sku"] = df["sku"].where(df["sku"].notna(), df["skus"])
    df = df.explode("sku", ignore_index=True)
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    return df
