"""The detectors' input: events and look-ups validated and binned to one hourly panel."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from pricing.events import STOCK_KINDS
from pricing.exceptions import InputError
from pricing.signals.common import (
    _HOUR,
    _NUMERIC_COLUMNS,
    _STIMULUS_TYPES,
    _WAVE_PREFIX,
    EVENT_TYPES,
    SignalPanel,
)

__all__ = ["build_signal_panel"]


def _validate_events(events: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(events, pd.DataFrame):
        raise InputError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in ("ts", "type", "sku", "market") if c not in events.columns]
    if missing:
        raise InputError(
            f"events is missing column(s) {missing}; required ts, type, sku, market, got {list(events.columns)}"
        )
    ev = events.copy()
    ts = ev["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        try:
            parsed = pd.to_datetime(ts, utc=False, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"events.ts must be zoned timestamps, got unparseable values: {exc}"
            ) from exc
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
            raise InputError(
                "events.ts must carry a time zone (e.g. 2026-12-05T18:00:00-05:00), "
                f"got naive timestamps such as {ts.iloc[0]!r}"
            )
        ts = parsed
    ev["ts"] = ts.dt.tz_convert("UTC")
    bad_type = ~ev["type"].isin(EVENT_TYPES)
    if bad_type.any():
        rows = list(ev.index[bad_type][:5])
        raise InputError(
            f"events.type has unknown value(s) {sorted(set(ev.loc[bad_type, 'type'].astype(str)))} "
            f"at rows {rows}; allowed {list(EVENT_TYPES)}"
        )
    for col in _NUMERIC_COLUMNS:
        if col not in ev:
            ev[col] = np.nan
        ev[col] = pd.to_numeric(ev[col], errors="coerce").astype(float)
    if "creator" not in ev:
        ev["creator"] = None
    if "event_id" not in ev:
        ev["event_id"] = None
    qty_types = ev["type"].isin(STOCK_KINDS)
    q = ev.loc[qty_types, "quantity"].to_numpy()
    bad = ~np.isfinite(q) | (q < 0)
    if bad.any():
        rows = list(ev.index[qty_types][bad][:5])
        raise InputError(
            f"events.quantity must be a finite number >= 0 for {'/'.join(STOCK_KINDS)}, "
            f"bad rows {rows}"
        )
    sale = ev["type"].eq("sale")
    p = ev.loc[sale, "unit_price"].to_numpy()
    bad = ~(np.isfinite(p) & (p > 0))
    if bad.any():
        rows = list(ev.index[sale][bad][:5])
        raise InputError(f"events.unit_price must be a finite price > 0 for sales, bad rows {rows}")
    need_market = ~ev["type"].eq("announcement") & ev["market"].isna()
    if need_market.any():
        raise InputError(
            f"events.market is empty at rows {list(ev.index[need_market][:5])}; only announcements "
            "may omit the market"
        )
    return ev


def _validate_lookups(lookups: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("hour", "sku", "market", "lookups") if c not in lookups.columns]
    if missing:
        raise InputError(
            f"lookups is missing column(s) {missing}; required hour, sku, market, lookups, "
            f"got {list(lookups.columns)}"
        )
    lk = lookups.copy()
    hour = pd.to_datetime(lk["hour"], utc=False)
    if not isinstance(hour.dtype, pd.DatetimeTZDtype):
        raise InputError("lookups.hour must carry a time zone, got naive timestamps")
    lk["hour"] = hour.dt.tz_convert("UTC").dt.floor("h")
    n = pd.to_numeric(lk["lookups"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(n) | (n < 0)
    if bad.any():
        raise InputError(f"lookups.lookups must be counts >= 0, bad rows {list(lk.index[bad][:5])}")
    return lk


def _validate_timezones(timezones: Mapping[str, str] | None) -> dict[str, str]:
    if timezones is None:
        return {}
    if not isinstance(timezones, Mapping):
        raise InputError(f"timezones must map market -> IANA zone, got {type(timezones).__name__}")
    for market, zone in timezones.items():
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(
                f"timezones[{market!r}] must be an IANA zone like 'America/New_York', got {zone!r}"
            ) from None
    return {str(m): str(z) for m, z in timezones.items()}


def build_signal_panel(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    timezones: Mapping[str, str] | None = None,
) -> SignalPanel:
    """Aggregate events (and look-ups) into hourly arrays per SKU-market.

    Announcements without a market count as a stimulus in every market that sells the
    SKU. Prices are the served look-up price where given, else revenue / units of the
    hour, carried forward through hours without an observation.

    Args:
        events: the event table (see the module docstring).
        lookups: optional price look-ups per SKU-market-hour.
        start, end: the hourly grid (UTC, end exclusive); default the data's span.
        timezones: market -> IANA zone; markets not named are taken in UTC.

    Returns:
        A :class:`SignalPanel`.

    Raises:
        InputError: a missing column, unknown type, naive timestamp, negative or
            non-finite quantity, a sale without a price, an empty table, or an unknown
            time zone.
    """
    zones = _validate_timezones(timezones)
    ev = _validate_events(events)
    lk = _validate_lookups(lookups) if lookups is not None else None
    if ev.empty and (lk is None or lk.empty):
        raise InputError("events is empty: nothing to detect, pass at least one event")
    # Integer codes for SKUs and markets over events and look-ups together: every
    # aggregation below is a bincount over flat (row, hour) indices, no frame filtering.
    n_ev = len(ev)
    sku_series = ev["sku"].astype(str)
    mkt_series = ev["market"].where(ev["market"].notna(), None)
    if lk is not None:
        sku_series = pd.concat([sku_series, lk["sku"].astype(str)], ignore_index=True)
        mkt_series = pd.concat([mkt_series, lk["market"]], ignore_index=True)
    sku_code, sku_names = pd.factorize(sku_series, sort=True)
    mkt_code, mkt_names = pd.factorize(mkt_series.astype("string"), sort=True)  # NaN -> -1
    n_mkt = max(len(mkt_names), 1)
    pair = np.where(mkt_code >= 0, sku_code.astype(np.int64) * n_mkt + mkt_code, -1)
    uniq, row_of = np.unique(pair, return_inverse=True)
    offset = 1 if uniq.size and uniq[0] == -1 else 0
    row_of = row_of.astype(np.int64) - offset  # -1 for rows without a market
    uniq = uniq[offset:]
    keys = pd.DataFrame(
        {
            "sku": np.asarray(sku_names, dtype=object)[uniq // n_mkt],
            "market": np.asarray(mkt_names, dtype=object)[uniq % n_mkt],
        }
    )
    hours_floor = ev["ts"].dt.floor("h")
    lo = pd.Timestamp(start).tz_convert("UTC") if start is not None else hours_floor.min()
    hi = pd.Timestamp(end).tz_convert("UTC") if end is not None else hours_floor.max() + _HOUR
    if lk is not None and not lk.empty:
        if start is None:
            lo = min(lo, lk["hour"].min())
        if end is None:
            hi = max(hi, lk["hour"].max() + _HOUR)
    grid = pd.date_range(lo, hi - _HOUR, freq="h")
    N, T = len(keys), len(grid)
    if N == 0 or T == 0:
        raise InputError(f"no SKU-market hours between {lo} and {hi}: widen start/end")
    ev_row = row_of[:n_ev]
    ev_t = ((hours_floor - lo) // _HOUR).to_numpy(dtype=np.int64)
    ev_ok = (ev_row >= 0) & (ev_t >= 0) & (ev_t < T)
    ev_flat = np.where(ev_ok, ev_row * T + ev_t, 0)
    type_col = ev["type"]

    def accumulate(mask: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        sel = mask & ev_ok
        w = None if values is None else values[sel]
        return np.bincount(ev_flat[sel], weights=w, minlength=N * T).reshape(N, T).astype(float)

    qty = ev["quantity"].fillna(0.0).to_numpy()
    is_sale = type_col.eq("sale").to_numpy()
    units = accumulate(is_sale, qty)
    units_sq = accumulate(is_sale, qty * qty)
    revenue = accumulate(is_sale, qty * ev["unit_price"].fillna(0.0).to_numpy())
    returns = accumulate(type_col.eq("return").to_numpy(), qty)
    is_restock = type_col.eq("restock").to_numpy()
    restocks = accumulate(is_restock, qty)
    wave = ev["event_id"].astype(str).str.startswith(_WAVE_PREFIX).to_numpy()
    wave_restocks = accumulate(is_restock & wave, qty)
    stimuli = accumulate(type_col.isin(_STIMULUS_TYPES).to_numpy(), None)

    # Market-less announcements reach every market that sells the SKU.
    broadcast = ev[ev["type"].eq("announcement") & ev["market"].isna()]
    if not broadcast.empty:
        t = ((broadcast["ts"].dt.floor("h") - lo) // _HOUR).to_numpy(dtype=np.int64)
        sku_rows = keys.groupby("sku").indices
        for sku, ti in zip(broadcast["sku"].astype(str), t, strict=True):
            if 0 <= ti < T and sku in sku_rows:
                stimuli[sku_rows[sku], ti] += 1.0

    price = np.where(units > 0, revenue / np.maximum(units, 1e-12), np.nan)
    look: np.ndarray = np.zeros((N, T))
    if lk is not None and not lk.empty:
        lk_row = row_of[n_ev:]
        lk_t = ((lk["hour"] - lo) // _HOUR).to_numpy(dtype=np.int64)
        ok = (lk_row >= 0) & (lk_t >= 0) & (lk_t < T)
        flat = lk_row[ok] * T + lk_t[ok]
        look = np.bincount(
            flat, weights=lk["lookups"].to_numpy(float)[ok], minlength=N * T
        ).reshape(N, T)
        if "price" in lk:
            # Several prices in one hour (the surface moves sale by sale): their mean
            # weighted by look-ups.
            p_served = pd.to_numeric(lk["price"], errors="coerce").to_numpy(float)[ok]
            w = lk["lookups"].to_numpy(float)[ok]
            has = np.isfinite(p_served) & (w > 0)
            num = np.bincount(flat[has], weights=(p_served * w)[has], minlength=N * T)
            den = np.bincount(flat[has], weights=w[has], minlength=N * T)
            served = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).reshape(N, T)
            price = np.where(np.isfinite(served), served, price)
    price = _carry_forward(price)
    markets = tuple(sorted(str(m) for m in keys["market"].unique()))
    used = {m: zones.get(m, "UTC") for m in markets}
    local_hour = np.zeros((len(markets), T), dtype=np.int64)
    local_weekday = np.zeros_like(local_hour)
    local_day = np.zeros_like(local_hour)
    for zone in set(used.values()):
        rows = [i for i, m in enumerate(markets) if used[m] == zone]
        local = grid.tz_convert(zone)
        local_hour[rows] = local.hour.to_numpy()
        local_weekday[rows] = local.day_of_week.to_numpy()
        naive = local.tz_localize(None).normalize()
        local_day[rows] = ((naive - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy()
    return SignalPanel(
        keys=keys,
        hours=grid,
        units=units,
        revenue=revenue,
        returns=returns,
        restocks=restocks,
        stimuli=stimuli,
        lookups=look,
        price=price,
        has_lookups=lk is not None and not lk.empty,
        units_sq=units_sq,
        wave_restocks=wave_restocks,
        markets=markets,
        local_hour=local_hour,
        local_weekday=local_weekday,
        local_day=local_day,
        timezones=used,
    )


def _carry_forward(x: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward along the time axis (NaN before the first)."""
    T = x.shape[1]
    idx = np.where(np.isfinite(x), np.arange(T)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = np.take_along_axis(x, idx, axis=1)
    seen = np.maximum.accumulate(np.isfinite(x), axis=1)
    return np.where(seen, out, np.nan)


def _by_market(panel: SignalPanel, x: np.ndarray) -> tuple[list[str], np.ndarray]:
    codes, markets = pd.factorize(panel.keys["market"], sort=True)
    # Every market has at least one row (markets come from the rows), so a sorted
    # reduceat sums each market's block of rows in one pass.
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(markets)))
    out = np.add.reduceat(x[order], starts, axis=0).astype(float)
    return [str(m) for m in markets], out
