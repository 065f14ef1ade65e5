"""Drop experiments: arms over markets, their report, and the difference between arms.

A drop can split its markets into arms that run with different rules (pricing by the
engine or a fixed list price, inventory released all at once or in waves, guardrail
variants). The arm is decided by the market, so every served price carries its arm and
the probability with which that price was served (1 for a deterministic surface, the
Thompson mix weight when exploring); that makes off-policy evaluation possible later.

:func:`experiment_report` turns the events of a drop (sales, returns) and the price
look-ups into, per arm: revenue, units, sell-through, average price, conversion (units
sold per price look-up) and returns rate; returns velocity per SKU and arm; and the
difference of each metric between every arm and the control arm, with a percentile
bootstrap confidence interval that resamples SKU-market clusters within each arm
(or whole markets, ``cluster="market"``, which is the randomisation unit and the honest
choice when there are enough markets).

Metrics of an arm ``a`` over its clusters ``c`` (SKU-markets)::

    revenue_per_cluster = Σ_c revenue_c / n_a          units_per_cluster = Σ_c units_c / n_a
    sell_through = Σ_c units_c / Σ_c inventory_c        avg_price = Σ_c revenue_c / Σ_c units_c
    conversion   = Σ_c units_c / Σ_c lookups_c          returns_rate = Σ_c returned_c / Σ_c units_c

Ratios of sums (not means of ratios), so a cluster weighs by its size. The bootstrap
draws ``n_a`` clusters with replacement in every arm ``B`` times (multinomial weights,
one matrix product per arm), recomputes each metric and the difference
``m(arm) − m(control)``; the interval is the ``(1 ± level)/2`` percentiles and the
two-sided p-value ``2 · min(P*(d ≤ 0), P*(d ≥ 0))``.

References:
    Efron, B. and Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*,
    ch. 13 (percentile intervals).
    Cameron, A. C., Gelbach, J. B. and Miller, D. L. (2008). Bootstrap-based improvements
    for inference with clustered errors. *Review of Economics and Statistics* 90(3),
    414–427 (resample whole clusters).
    Li, L., Chu, W., Langford, J. and Wang, X. (2011). Unbiased offline evaluation of
    contextual-bandit-based news article recommendation algorithms. *WSDM* (why the
    served price's probability is logged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from pricing.customers import RepeatReport
from pricing.exceptions import InputError

__all__ = [
    "METRICS",
    "ArmSpec",
    "ExperimentReport",
    "arm_for_market",
    "experiment_report",
    "randomise_arms",
    "release_schedule",
]

METRICS: tuple[str, ...] = (
    "revenue_per_cluster",
    "units_per_cluster",
    "sell_through",
    "avg_price",
    "conversion",
    "returns_rate",
)
"""Metrics compared between arms, in report order."""

# numerator, denominator column of the cluster table for each metric
_RATIO: dict[str, tuple[str, str]] = {
    "revenue_per_cluster": ("revenue", "clusters"),
    "units_per_cluster": ("units", "clusters"),
    "sell_through": ("units", "inventory"),
    "avg_price": ("revenue", "units"),
    "conversion": ("units", "lookups"),
    "returns_rate": ("returned", "units"),
}
_COLUMNS = ("revenue", "units", "inventory", "lookups", "returned", "clusters")


class ArmSpec(NamedTuple):
    """One experiment arm, as the pricing core sees it (mirrors the service's ``Arm``).

    Attributes:
        name: arm name recorded with each served price.
        markets: the markets assigned to the arm.
        pricing: ``engine`` (price surfaces) or ``fixed`` (the list price).
        release: ``all_at_once`` or ``waves``.
        waves: number of release waves when ``release == "waves"``.
    """

    name: str
    markets: tuple[str, ...]
    pricing: str = "engine"
    release: str = "all_at_once"
    waves: int = 1


def arm_for_market(market: str, arms: Sequence[ArmSpec]) -> ArmSpec | None:
    """The arm whose markets include ``market``, or ``None`` (the market is in no arm).

    Assignment is by market, so the probability of an arm given the market is 1.
    """
    for arm in arms:
        if market in arm.markets:
            return arm
    return None


def randomise_arms(
    markets: Sequence[str],
    arms: Sequence[str] = ("control", "treatment"),
    *,
    key: int | np.random.Generator,
    strata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Assign markets to arms at random, balanced (within strata when given).

    Markets are shuffled (per stratum, e.g. by region or size band) and dealt to the arms
    in turn, so arm sizes differ by at most one per stratum.

    Args:
        markets: the markets of the drop.
        arms: arm names.
        key: seed or ``numpy.random.Generator`` (the same key gives the same split).
        strata: market -> stratum; all markets in one stratum when ``None``.

    Returns:
        market -> arm name.

    Raises:
        InputError: fewer than two arms, duplicate markets or arms, or a market
            without a stratum.
    """
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise InputError(f"need at least two distinct arms, got {list(arms)}")
    if len(set(markets)) != len(markets):
        raise InputError(f"markets must be distinct, got {list(markets)}")
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
    strata = strata or {m: "all" for m in markets}
    missing = [m for m in markets if m not in strata]
    if missing:
        raise InputError(f"markets {missing} have no stratum; give every market one")
    out: dict[str, str] = {}
    offset = 0
    for stratum in sorted({strata[m] for m in markets}):
        members = [m for m in markets if strata[m] == stratum]
        for i, j in enumerate(rng.permutation(len(members))):
            out[members[j]] = arms[(i + offset) % len(arms)]
        offset += len(members)  # the next stratum starts where this one stopped
    return {m: out[m] for m in markets}


def release_schedule(
    units: int, start: pd.Timestamp, end: pd.Timestamp, *, waves: int = 1
) -> list[tuple[pd.Timestamp, int]]:
    """Inventory released in ``waves`` equal waves evenly spaced over ``[start, end)``.

    Wave ``k`` (``k = 0..waves-1``) opens at ``start + k (end − start) / waves`` with
    ``⌊units / waves⌋`` units, the remainder going to the first waves, so the total is
    exactly ``units``. ``waves = 1`` is all at once.

    Raises:
        InputError: ``units < 0``, ``waves < 1`` or ``end <= start``.
    """
    if units < 0 or waves < 1:
        raise InputError(f"units must be >= 0 and waves >= 1, got units={units} waves={waves}")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end <= start:
        raise InputError(f"end must be after start, got start={start} end={end}")
    base, extra = divmod(int(units), waves)
    step = (end - start) / waves
    return [(start + k * step, base + (1 if k < extra else 0)) for k in range(waves)]


@dataclass(frozen=True)
class ExperimentReport:
    """Result of :func:`experiment_report`.

    Attributes:
        drop_id: the drop.
        control: the arm every other arm is compared with.
        arms: one row per arm: ``clusters, markets, revenue, units, inventory,
            lookups, returned`` and the :data:`METRICS`.
        differences: one row per (arm, metric) for arms other than control:
            ``arm, metric, control_value, arm_value, difference, ci_low, ci_high,
            relative, p_value, se``.
        returns_velocity: one row per (sku, arm): ``returned, units, returns_rate,
            days, returns_per_day``.
        cluster: ``sku_market`` or ``market``.
        level: confidence level of the intervals.
        n_boot: bootstrap draws.
        propensity: mean logged probability of the served price per arm (NaN when
            look-ups carry none).
        customers: each arm's 30-day repeat value of its new customers
            (:func:`pricing.customers.repeat_value`), ``None`` when sales carry no customer.
    """

    drop_id: str
    control: str
    arms: pd.DataFrame
    differences: pd.DataFrame
    returns_velocity: pd.DataFrame
    cluster: str
    level: float
    n_boot: int
    propensity: Mapping[str, float] = field(default_factory=dict)
    customers: RepeatReport | None = None

    def difference(self, metric: str, arm: str | None = None) -> pd.Series:
        """The difference row of ``metric`` (for ``arm``; the only treatment arm if None)."""
        rows = self.differences[self.differences["metric"] == metric]
        if arm is not None:
            rows = rows[rows["arm"] == arm]
        if len(rows) != 1:
            raise InputError(
                f"no unique difference for metric={metric!r} arm={arm!r}; arms "
                f"{sorted(self.differences['arm'].unique())}, metrics {list(METRICS)}"
            )
        return rows.iloc[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {
                    k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                    for k, v in r.items()
                }
                for r in frame.to_dict(orient="records")
            ]

        return {
            "drop_id": self.drop_id,
            "control": self.control,
            "cluster": self.cluster,
            "level": self.level,
            "n_boot": self.n_boot,
            "arms": records(self.arms),
            "differences": records(self.differences),
            "returns_velocity": records(self.returns_velocity),
            "propensity": {
                k: (None if not np.isfinite(v) else v) for k, v in self.propensity.items()
            },
            "customers": None if self.customers is None else self.customers.to_dict(),
        }

    def __str__(self) -> str:
        lines = [f"experiment {self.drop_id or '(drop)'}: control arm {self.control!r}"]

        def pct(x: float) -> str:
            return f"{x:6.1%}" if np.isfinite(x) else "   n/a"

        for r in self.arms.itertuples(index=False):
            lines.append(
                f"  {r.arm:12s} revenue {r.revenue:12.2f}  units {r.units:8.0f}  "
                f"sell-through {pct(r.sell_through)}  avg price {r.avg_price:8.2f}  "
                f"conversion {pct(r.conversion)}  returns {pct(r.returns_rate)}"
            )
        level = int(round(100 * self.level))
        for r in self.differences.itertuples(index=False):
            if not np.isfinite(r.difference):
                lines.append(f"  {r.arm} − {self.control}: {r.metric:20s} n/a (no data)")
                continue
            lines.append(
                f"  {r.arm} − {self.control}: {r.metric:20s} {r.difference:+.4g} "
                f"[{r.ci_low:+.4g}, {r.ci_high:+.4g}] ({level}% CI, p={r.p_value:.3f})"
            )
        fastest = self.returns_velocity.sort_values("returns_per_day", ascending=False).head(5)
        if len(fastest) and fastest["returned"].sum() > 0:
            lines.append("  fastest returns (units/day):")
            for v in fastest.itertuples(index=False):
                if v.returned > 0:
                    lines.append(
                        f"    {v.sku:16s} {v.arm:12s} {v.returns_per_day:8.2f}/day "
                        f"({v.returns_rate:.1%} of {v.units:.0f} sold)"
                    )
        if self.customers is not None:
            lines.append(str(self.customers))
        return "\n".join(lines)


def _cluster_table(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None,
    inventory: pd.DataFrame | Mapping[tuple[str, str], int] | None,
) -> pd.DataFrame:
    missing = [c for c in ("type", "sku", "market", "quantity") if c not in events.columns]
    if missing:
        raise InputError(
            f"events is missing column(s) {missing}; need type, sku, market, quantity "
            f"(and unit_price for sales), got {list(events.columns)}"
        )
    sales = events[events["type"] == "sale"]
    if "unit_price" not in events.columns and len(sales):
        raise InputError("events needs a unit_price column for its sale rows")
    q = pd.to_numeric(sales["quantity"], errors="coerce").to_numpy(float)
    p = pd.to_numeric(sales["unit_price"], errors="coerce").to_numpy(float) if len(sales) else q
    bad = ~np.isfinite(q) | (q < 0) | ~np.isfinite(p) | (p <= 0)
    if bad.any():
        raise InputError(
            f"sale rows need quantity >= 0 and unit_price > 0, bad rows {list(sales.index[bad][:5])}"
        )
    key = ["sku", "market"]
    table = (
        pd.DataFrame({"sku": sales["sku"], "market": sales["market"], "units": q, "revenue": q * p})
        .groupby(key)[["units", "revenue"]]
        .sum()
    )
    rets = events[events["type"] == "return"]
    returned = (
        pd.DataFrame(
            {
                "sku": rets["sku"],
                "market": rets["market"],
                "returned": pd.to_numeric(rets["quantity"], errors="coerce").fillna(0.0),
            }
        )
        .groupby(key)["returned"]
        .sum()
    )
    parts = [table, returned]
    if lookups is not None and len(lookups):
        if "lookups" not in lookups.columns:
            raise InputError(f"lookups needs a lookups column, got {list(lookups.columns)}")
        parts.append(lookups.groupby(key)["lookups"].sum().astype(float))
    if inventory is not None:
        if isinstance(inventory, pd.DataFrame):
            inv = inventory.set_index(key)["inventory"].astype(float)
        else:
            inv = pd.Series(
                {k: float(v) for k, v in inventory.items()}, name="inventory", dtype=float
            )
            inv.index = pd.MultiIndex.from_tuples(inv.index, names=key)
        parts.append(inv.rename("inventory"))
    out = pd.concat(parts, axis=1).fillna(0.0)
    for col in ("units", "revenue", "returned", "lookups", "inventory"):
        if col not in out:
            out[col] = 0.0
    out["clusters"] = 1.0
    return out.reset_index()


def experiment_report(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    arms: Mapping[str, str] | Sequence[ArmSpec] | None = None,
    inventory: pd.DataFrame | Mapping[tuple[str, str], int] | None = None,
    control: str | None = None,
    cluster: Literal["sku_market", "market"] = "sku_market",
    n_boot: int = 2000,
    level: float = 0.95,
    key: int | np.random.Generator = 0,
    drop_id: str = "",
) -> ExperimentReport:
    """Per-arm metrics and the differences between arms with bootstrap intervals.

    Args:
        events: the drop's events: ``type``, ``sku``, ``market``, ``quantity`` and
            ``unit_price`` (sales); ``return`` rows feed the returns metrics; ``ts``
            (zoned) is used for returns velocity when present.
        lookups: price look-ups ``sku, market, lookups`` (+ ``propensity``, ``arm``);
            conversion is NaN without them.
        arms: market -> arm, or the arms' specs; when ``None`` the ``arm`` column of
            ``lookups`` decides (its most frequent value per market).
        inventory: starting units per (sku, market), a mapping or a frame with
            ``sku, market, inventory``; sell-through is NaN without it.
        control: the reference arm; default the arm named ``control`` if any, else the
            first arm in sorted order.
        cluster: resampling unit, ``sku_market`` (default) or ``market``.
        n_boot: bootstrap draws (>= 100).
        level: confidence level in (0, 1).
        key: seed or ``numpy.random.Generator`` of the bootstrap.
        drop_id: the drop's id, for the report.

    Returns:
        An :class:`ExperimentReport`.

    Raises:
        InputError: malformed tables, fewer than two arms with data, an unknown
            control arm, an arm with fewer than two clusters, or bad ``n_boot``/``level``.

    Example:
        >>> from pricing.synthetic import ArmEffect, simulate_event_stream
        >>> s = simulate_event_stream(key=0, hours=72, plant=(ArmEffect("b", ("queens", "harlem", "newark"), 1.5),))
        >>> rep = experiment_report(s.events, s.lookups, arms=s.truth.arms, n_boot=200)
        >>> bool(rep.difference("units_per_cluster")["difference"] > 0)
        True
    """
    if n_boot < 100:
        raise InputError(f"n_boot must be >= 100 for a percentile interval, got {n_boot}")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    if cluster not in ("sku_market", "market"):
        raise InputError(f"cluster must be 'sku_market' or 'market', got {cluster!r}")
    table = _cluster_table(events, lookups, inventory)
    market_arm = _market_arms(arms, lookups)
    table["arm"] = table["market"].map(market_arm)
    table = table[table["arm"].notna()]
    names = sorted(table["arm"].unique())
    if len(names) < 2:
        raise InputError(
            f"need at least two arms with data, got {names}; markets seen "
            f"{sorted(set(events['market'].dropna()))}, arms {market_arm}"
        )
    if control is None:
        control = "control" if "control" in names else names[0]
    if control not in names:
        raise InputError(f"control arm {control!r} has no data; arms with data {names}")
    if cluster == "market":
        table = table.groupby(["market", "arm"], as_index=False)[list(_COLUMNS)].sum()
        table["clusters"] = table["clusters"].astype(float)
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)

    arm_rows = []
    boot: dict[str, np.ndarray] = {}
    point: dict[str, dict[str, float]] = {}
    for name in names:
        X = table.loc[table["arm"] == name, list(_COLUMNS)].to_numpy(float)  # [n, 6]
        n = X.shape[0]
        if n < 2:
            raise InputError(
                f"arm {name!r} has {n} {cluster} cluster(s); a bootstrap needs at least 2"
            )
        totals = X.sum(0)
        point[name] = _metrics(totals[None, :])[0]
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
        boot[name] = _metric_matrix(weights @ X)  # [B, len(METRICS)]
        row = {"arm": name, "markets": int(table.loc[table["arm"] == name, "market"].nunique())}
        row.update(dict(zip(_COLUMNS, totals, strict=True)))
        row["clusters"] = int(n)
        row.update(point[name])
        arm_rows.append(row)
    arms_frame = pd.DataFrame(arm_rows)

    alpha = (1.0 - level) / 2.0
    diff_rows = []
    for name in names:
        if name == control:
            continue
        d = boot[name] - boot[control]  # [B, M]
        for j, metric in enumerate(METRICS):
            est = point[name][metric] - point[control][metric]
            dj = d[:, j][np.isfinite(d[:, j])]
            if dj.size == 0 or not np.isfinite(est):
                lo = hi = p = se = float("nan")
            else:
                lo, hi = (float(x) for x in np.quantile(dj, [alpha, 1.0 - alpha]))
                p = float(min(1.0, 2.0 * min((dj <= 0).mean(), (dj >= 0).mean())))
                se = float(dj.std(ddof=1))
            base = point[control][metric]
            diff_rows.append(
                {
                    "arm": name,
                    "metric": metric,
                    "control_value": base,
                    "arm_value": point[name][metric],
                    "difference": est,
                    "ci_low": lo,
                    "ci_high": hi,
                    "relative": est / base if base and np.isfinite(base) else float("nan"),
                    "p_value": p,
                    "se": se,
                }
            )
    propensity: dict[str, float] = {}
    if lookups is not None and "propensity" in lookups.columns and len(lookups):
        lk = lookups.assign(arm=lookups["market"].map(market_arm))
        propensity = {
            str(a): float(g["propensity"].mean()) for a, g in lk.groupby("arm") if a in names
        }
    return ExperimentReport(
        drop_id=drop_id,
        control=control,
        arms=arms_frame,
        differences=pd.DataFrame(
            diff_rows,
            columns=[
                "arm",
                "metric",
                "control_value",
                "arm_value",
                "difference",
                "ci_low",
                "ci_high",
                "relative",
                "p_value",
                "se",
            ],
        ),
        returns_velocity=_returns_velocity(events, market_arm),
        cluster=cluster,
        level=level,
        n_boot=n_boot,
        propensity=propensity,
    )


def _metric_matrix(sums: np.ndarray) -> np.ndarray:
    """``[B, 6]`` column sums -> ``[B, len(METRICS)]`` metrics (NaN for 0/0)."""
    col = {c: i for i, c in enumerate(_COLUMNS)}
    out = np.empty((sums.shape[0], len(METRICS)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, metric in enumerate(METRICS):
            num, den = _RATIO[metric]
            out[:, j] = np.where(
                sums[:, col[den]] > 0, sums[:, col[num]] / sums[:, col[den]], np.nan
            )
    return out


def _metrics(sums: np.ndarray) -> list[dict[str, float]]:
    m = _metric_matrix(sums)
    return [dict(zip(METRICS, (float(x) for x in row), strict=True)) for row in m]


def _market_arms(
    arms: Mapping[str, str] | Sequence[ArmSpec] | None, lookups: pd.DataFrame | None
) -> dict[str, str]:
    if arms is None:
        if lookups is None or "arm" not in lookups.columns:
            raise InputError(
                "give arms (market -> arm or ArmSpec list) or lookups with an arm column"
            )
        pairs = lookups.dropna(subset=["arm"]).groupby("market")["arm"]
        return {str(m): str(g.mode().iloc[0]) for m, g in pairs}
    if isinstance(arms, Mapping):
        return {str(m): str(a) for m, a in arms.items()}
    out: dict[str, str] = {}
    for spec in arms:
        for m in spec.markets:
            if m in out:
                raise InputError(
                    f"market {m!r} is in arms {out[m]!r} and {spec.name!r}; one arm each"
                )
            out[m] = spec.name
    return out


def _returns_velocity(events: pd.DataFrame, market_arm: Mapping[str, str]) -> pd.DataFrame:
    """Returned units per day and per unit sold, per SKU and arm.

    ``returns_per_day = returned / days`` with ``days`` the span from the SKU-arm's
    first sale to the last event of the table (at least one hour), so a SKU that starts
    coming back fast right after its drop shows a high velocity before its rate settles.
    """
    cols = ["sku", "arm", "returned", "units", "returns_rate", "days", "returns_per_day"]
    ev = events[events["type"].isin(("sale", "return"))].copy()
    ev["arm"] = ev["market"].map(market_arm)
    ev = ev[ev["arm"].notna()]
    if ev.empty:
        return pd.DataFrame(columns=cols)
    ev["q"] = pd.to_numeric(ev["quantity"], errors="coerce").fillna(0.0)
    has_ts = "ts" in ev.columns
    end = pd.to_datetime(events["ts"], utc=True).max() if has_ts else None
    rows = []
    for (sku, arm), g in ev.groupby(["sku", "arm"], sort=True):
        sold = float(g.loc[g["type"] == "sale", "q"].sum())
        back = float(g.loc[g["type"] == "return", "q"].sum())
        if has_ts and (g["type"] == "sale").any():
            first = pd.to_datetime(g.loc[g["type"] == "sale", "ts"], utc=True).min()
            days = max((end - first) / pd.Timedelta(days=1), 1.0 / 24.0)
        else:
            days = float("nan")
        rows.append(
            {
                "sku": sku,
                "arm": arm,
                "returned": back,
                "units": sold,
                "returns_rate": back / sold if sold > 0 else float("nan"),
                "days": days,
                "returns_per_day": back / days if days and np.isfinite(days) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=cols)
