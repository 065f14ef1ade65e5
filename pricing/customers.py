"""What a drop did to its new customers 30 days later, per arm, and a simulator that plants it.

A sale may carry a pseudonymous customer (``customer_id``, a keyed hash made as the sale
arrives, :mod:`service.store.pseudonyms`). The **cohort** of a drop is the customers whose first
purchase in the records falls inside the drop (between its first window's start and its
last window's end) in one of its markets; a customer seen before the drop is not new and
is left out. A customer belongs to the arm of the market of that first purchase.

For each customer ``i`` of arm ``a``, over the ``H = 30`` days after the drop ends:

.. math::

    y_i = \\sum_{\\text{sales } s \\text{ of } i,\\ t_s \\in (T_{end}, T_{end} + H]} q_s p_s,
    \\qquad r_i = 1[y_i > 0]

(any SKU, any market: the value a customer brings back). Per arm, the **repeat revenue**
is ``ȳ_a`` (per cohort customer) and the **repeat rate** ``r̄_a``. Intervals come from a
cluster bootstrap with customers as clusters (all of a customer's purchases move together:
Cameron, Gelbach & Miller 2008), resampling each arm's customers with replacement ``B``
times; the difference to the control arm takes the percentiles of ``m*_a − m*_control``.
Until ``H`` days have passed since the drop ended the figures are partial and the report
says so, with the days observed.

:func:`drop_customers` and :func:`plant_repeat_purchases` make such records in the
simulator: each unit a simulated drop sold goes to a new customer, and each cohort
customer of arm ``a`` comes back with probability ``rate[a]`` for ``1 + Poisson(0.5)``
purchases of mean ``spend[a]``, so the planted effect is known:
``E[ȳ_a] = 1.5 · rate[a] · spend[a]``.

References:
    Cameron, A. C., Gelbach, J. B. and Miller, D. L. (2008). Bootstrap-based improvements
    for inference with clustered errors. *Review of Economics and Statistics* 90(3), 414-427.
    Efron, B. and Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*, ch. 13.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pricing.exceptions import InputError

__all__ = [
    "HORIZON_DAYS",
    "RepeatReport",
    "drop_customers",
    "plant_repeat_purchases",
    "repeat_value",
]

HORIZON_DAYS = 30
"""Days after the drop over which a cohort's repeat purchases count."""
EXTRA_PURCHASES = 0.5
"""Mean purchases beyond the first of a returning simulated customer (Poisson)."""
_METRICS = ("repeat_revenue", "repeat_rate")


@dataclass(frozen=True)
class RepeatReport:
    """Each arm's 30-day repeat revenue and repeat rate of its new customers.

    Attributes:
        arms: one row per arm: ``arm``, ``customers``, ``repeat_revenue`` (per customer)
            with ``repeat_revenue_ci``, ``repeat_rate`` with ``repeat_rate_ci``.
        differences: one row per non-control arm and metric: ``arm``, ``metric``,
            ``difference`` (arm − control), ``ci_low``, ``ci_high``.
        control: the reference arm.
        drop_end: when the drop's last window closed; the horizon runs from there.
        horizon_days: ``H``.
        days_observed: days of the horizon the records cover (``≤ H``).
        level: interval level.
    """

    arms: pd.DataFrame
    differences: pd.DataFrame
    control: str
    drop_end: pd.Timestamp
    horizon_days: int
    days_observed: float
    level: float
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether the whole horizon has passed."""
        return self.days_observed >= self.horizon_days

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "control": self.control,
            "drop_end": self.drop_end.isoformat(),
            "horizon_days": self.horizon_days,
            "days_observed": round(self.days_observed, 2),
            "complete": self.complete,
            "level": self.level,
            "arms": self.arms.to_dict(orient="records"),
            "differences": self.differences.to_dict(orient="records"),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        pct = int(round(100 * self.level))
        lines = [f"New customers {self.horizon_days} days after the drop ({pct}% intervals):"]
        for note in self.notes:
            lines.append(f"  note: {note}")
        for r in self.arms.itertuples():
            lines.append(
                f"  {r.arm:<18} {r.customers:>6} customers  repeat revenue "
                f"{r.repeat_revenue:8.2f} [{r.repeat_revenue_ci[0]:.2f}, "
                f"{r.repeat_revenue_ci[1]:.2f}]  repeat rate {r.repeat_rate:6.1%} "
                f"[{r.repeat_rate_ci[0]:.1%}, {r.repeat_rate_ci[1]:.1%}]"
            )
        for d in self.differences.itertuples():
            lines.append(
                f"  {d.arm} − {self.control}: {d.metric} {d.difference:+.3f} "
                f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}]"
            )
        return "\n".join(lines)


def _cohort(
    sales: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, market_arm: Mapping[str, str]
) -> pd.DataFrame:
    """``customer_id, arm`` of the customers first seen in the drop."""
    first = sales.sort_values("ts", kind="stable").groupby("customer_id", sort=False).first()
    new = first[(first["ts"] >= start) & (first["ts"] <= end)]
    arm = new["market"].map(market_arm)
    return pd.DataFrame({"customer_id": new.index[arm.notna()], "arm": arm[arm.notna()].values})


def repeat_value(
    events: pd.DataFrame,
    *,
    drop_start: pd.Timestamp | Any,
    drop_end: pd.Timestamp | Any,
    market_arm: Mapping[str, str],
    control: str | None = None,
    now: pd.Timestamp | Any = None,
    horizon_days: int = HORIZON_DAYS,
    n_boot: int = 2000,
    level: float = 0.95,
    key: int = 0,
) -> RepeatReport:
    """Each arm's 30-day repeat revenue and repeat rate per new customer, with intervals.

    Args:
        events: the events table (``ts``, ``type``, ``market``, ``quantity``,
            ``unit_price``, ``customer_id``); only sales with a customer count.
        drop_start, drop_end: the drop's first window's start and last window's end.
        market_arm: market -> arm of the drop's markets.
        control: the reference arm (default ``control`` if present, else the first).
        now: when the report is made (default: now); caps the horizon observed.
        horizon_days: ``H``.
        n_boot, level, key: bootstrap draws, interval level, seed.

    Returns:
        :class:`RepeatReport` (arms with no new customer are left out, with a note).

    Raises:
        InputError: a missing column, or fewer than two arms.
    """
    need = {"ts", "type", "market", "quantity", "unit_price", "customer_id"}
    missing = sorted(need - set(events.columns))
    if missing:
        raise InputError(f"events lack column(s) {missing}; need {sorted(need)}")
    arms = list(dict.fromkeys(market_arm.values()))
    if len(arms) < 2:
        raise InputError(f"repeat value compares arms; got {arms}")
    control = control or ("control" if "control" in arms else arms[0])
    if control not in arms:
        raise InputError(f"control arm {control!r} is not one of {arms}")
    start, end = pd.Timestamp(drop_start), pd.Timestamp(drop_end)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    until = end + pd.Timedelta(days=horizon_days)
    observed = max(0.0, min(horizon_days, (now - end) / pd.Timedelta(days=1)))
    sales = events[(events["type"] == "sale") & events["customer_id"].notna()].copy()
    sales["ts"] = pd.to_datetime(sales["ts"], utc=True)
    sales["revenue"] = sales["quantity"].astype(float) * sales["unit_price"].astype(float)
    cohort = _cohort(sales, start, end, market_arm)
    later = sales[(sales["ts"] > end) & (sales["ts"] <= min(until, now))]
    spent = later.groupby("customer_id")["revenue"].sum()
    cohort["revenue"] = cohort["customer_id"].map(spent).fillna(0.0).to_numpy()
    notes = []
    if observed < horizon_days:
        notes.append(
            f"{horizon_days} days have not passed yet: {observed:.1f} of {horizon_days} days "
            f"since the drop ended ({end.isoformat()}) are observed; the figures are partial "
            f"until {until.isoformat()}"
        )
    rng = np.random.default_rng(key)
    alpha = (1.0 - level) / 2.0
    rows, draws = [], {}
    for arm in arms:
        y = cohort.loc[cohort["arm"] == arm, "revenue"].to_numpy()
        if y.size == 0:
            notes.append(f"arm {arm!r} has no customer first seen in the drop")
            continue
        boot = rng.multinomial(y.size, np.full(y.size, 1.0 / y.size), size=n_boot) / y.size
        draws[arm] = {"repeat_revenue": boot @ y, "repeat_rate": boot @ (y > 0)}
        row: dict[str, Any] = {"arm": arm, "customers": int(y.size)}
        for metric, value in (("repeat_revenue", y.mean()), ("repeat_rate", (y > 0).mean())):
            lo, hi = np.quantile(draws[arm][metric], [alpha, 1 - alpha])
            row[metric], row[f"{metric}_ci"] = float(value), (float(lo), float(hi))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["arm", "customers", *_ci_columns()])
    diffs = []
    base = table.set_index("arm")
    for arm in (a for a in draws if a != control and control in draws):
        for metric in _METRICS:
            d = draws[arm][metric] - draws[control][metric]
            lo, hi = np.quantile(d, [alpha, 1 - alpha])
            point = float(base.loc[arm, metric] - base.loc[control, metric])
            diffs.append(
                {"arm": arm, "metric": metric, "difference": point, "ci_low": lo, "ci_high": hi}
            )
    differences = pd.DataFrame(diffs, columns=["arm", "metric", "difference", "ci_low", "ci_high"])
    return RepeatReport(table, differences, control, end, horizon_days, observed, level, notes)


def _ci_columns() -> list[str]:
    return [c for m in _METRICS for c in (m, f"{m}_ci")]


# ------------------------------------------------------------------ simulated customers


def drop_customers(
    sales_path: np.ndarray,
    prices: np.ndarray,
    rows: Sequence[tuple[str, str]],
    times: Sequence[pd.Timestamp],
) -> pd.DataFrame:
    """Sale events of a simulated drop, each unit bought by a new customer.

    Args:
        sales_path: ``[R, P]`` units sold (:attr:`pricing.simulate.PolicyRun.sales_path`).
        prices: ``[R, P]`` prices served.
        rows: ``(sku, market)`` of each row.
        times: ``P`` timestamps of the periods.

    Returns:
        Events ``ts, type, sku, market, quantity, unit_price, customer_id``.
    """
    r_idx, t_idx = np.nonzero(np.asarray(sales_path) > 0)
    units = np.asarray(sales_path)[r_idx, t_idx].astype(np.int64)
    r_rep, t_rep = np.repeat(r_idx, units), np.repeat(t_idx, units)
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([times[int(t)] for t in t_rep]),
            "type": "sale",
            "sku": [rows[int(r)][0] for r in r_rep],
            "market": [rows[int(r)][1] for r in r_rep],
            "quantity": 1.0,
            "unit_price": np.asarray(prices)[r_rep, t_rep].astype(float),
            "customer_id": [f"sim-{i:06d}" for i in range(r_rep.size)],
        }
    )


def plant_repeat_purchases(
    cohort: pd.DataFrame,
    *,
    rate: Mapping[str, float],
    spend: Mapping[str, float],
    after: pd.Timestamp,
    horizon_days: int = HORIZON_DAYS,
    key: int = 0,
) -> pd.DataFrame:
    """Repeat sales of a cohort with a known effect per arm.

    Each customer of arm ``a`` returns with probability ``rate[a]`` and then buys
    ``1 + Poisson(0.5)`` times, each at a uniform time in ``(after, after + H]`` and a
    price drawn from an exponential of mean ``spend[a]``.

    Args:
        cohort: ``customer_id, arm`` (e.g. the drop's sales with their market's arm).
        rate, spend: per arm.
        after: when the drop ended.
        horizon_days: ``H``.
        key: seed.

    Returns:
        Events ``ts, type, sku, market, quantity, unit_price, customer_id``.
    """
    rng = np.random.default_rng(key)
    arm = cohort["arm"].to_numpy()
    p = np.array([rate[a] for a in arm])
    back = rng.random(arm.size) < p
    count = np.where(back, 1 + rng.poisson(EXTRA_PURCHASES, arm.size), 0)
    who = np.repeat(np.arange(arm.size), count)
    mean = np.array([spend[a] for a in arm])[who]
    offset = (1.0 - rng.random(who.size)) * horizon_days  # in (0, H]
    return pd.DataFrame(
        {
            "ts": pd.Timestamp(after) + pd.to_timedelta(offset, unit="D"),
            "type": "sale",
            "sku": "REPEAT",
            "market": "online",
            "quantity": 1.0,
            "unit_price": rng.exponential(mean),
            "customer_id": cohort["customer_id"].to_numpy()[who],
        }
    )
