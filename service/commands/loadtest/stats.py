"""Reading locust's statistics and judging them against the latency and error SLOs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import typer

__all__ = [
    "Peak",
    "RouteStats",
    "SloResult",
    "evaluate_slos",
    "parse_duration",
    "parse_slos",
    "read_locust_stats",
    "read_peak",
]


SLO_KEYS = {
    "p50_ms": "p50 latency (ms, every route)",
    "p95_ms": "p95 latency (ms, every route)",
    "p99_ms": "p99 latency (ms, every route)",
    "error_rate": "failed requests / requests",
    "min_rps": "total requests per second",
}
SHAPE_NAMES = ("rush", "soak", "steady")
TOTAL = "Aggregated"


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"2m"``, ``"1h30m"`` -> seconds.

    Raises:
        typer.BadParameter: not a duration, or not positive.
    """
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
        if not text or parts is None:
            raise typer.BadParameter(
                f"duration must look like 60s, 2m or 1h30m, got {text!r}", param_hint="--duration"
            )
        h, m, s = parts.groups()
        seconds = int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds <= 0:
        raise typer.BadParameter(f"duration must be > 0, got {text!r}", param_hint="--duration")
    return seconds


def parse_slos(text: str) -> dict[str, float]:
    """``"p99_ms=10,error_rate=0.001"`` -> ``{"p99_ms": 10.0, "error_rate": 0.001}``.

    Raises:
        typer.BadParameter: an unknown SLO, a missing ``=`` or a bad value.
    """
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise typer.BadParameter(f"SLO must be name=value, got {item!r}", param_hint="--slo")
        if name not in SLO_KEYS:
            raise typer.BadParameter(
                f"unknown SLO {name!r}, allowed {sorted(SLO_KEYS)}", param_hint="--slo"
            )
        try:
            number = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"SLO {name} must be a number, got {value!r}", param_hint="--slo"
            ) from None
        if not number >= 0 or number == float("inf"):
            raise typer.BadParameter(
                f"SLO {name} must be a finite number >= 0, got {value!r}", param_hint="--slo"
            )
        if name == "error_rate" and number > 1:
            raise typer.BadParameter(
                f"error_rate is a fraction in [0, 1], got {number}", param_hint="--slo"
            )
        out[name] = number
    return out


class RouteStats(NamedTuple):
    """One row of locust's ``*_stats.csv`` (times in ms)."""

    name: str
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    rps: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def read_locust_stats(path: Path) -> list[RouteStats]:
    """Rows of locust's ``<prefix>_stats.csv``, the total (``Aggregated``) last.

    Raises:
        FileNotFoundError: locust wrote no stats (see ``locust.log``).
    """
    import csv

    def pct(value: str) -> float | None:
        return None if value in ("", "N/A") else float(value)

    rows = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append(
                RouteStats(
                    name=row["Name"] if row["Name"] == TOTAL else f"{row['Type']} {row['Name']}",
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    p50=pct(row["50%"]),
                    p95=pct(row["95%"]),
                    p99=pct(row["99%"]),
                    rps=float(row["Requests/s"]),
                )
            )
    rows.sort(key=lambda r: (r.name == TOTAL, r.name))
    return rows


class Peak(NamedTuple):
    """The busiest moment of a run, from locust's per-second history (``--csv-full-history``)."""

    users: int
    """Most terminals active at once."""
    rps: float
    """Highest total requests/s (locust's rolling average over the last seconds)."""


def read_peak(path: Path) -> Peak:
    """Peak users and requests/s from ``<prefix>_stats_history.csv`` (zeros if absent)."""
    import csv

    users, rps = 0, 0.0
    if not Path(path).exists():
        return Peak(0, 0.0)
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != TOTAL:
                continue
            users = max(users, int(row["User Count"] or 0))
            rps = max(rps, float(row["Requests/s"] or 0.0))
    return Peak(users, rps)


class SloResult(NamedTuple):
    """One SLO: its target, the measured value that decides it, PASS or FAIL."""

    name: str
    target: float
    measured: float | None
    where: str
    ok: bool


def evaluate_slos(stats: Sequence[RouteStats], slos: Mapping[str, float]) -> list[SloResult]:
    """Judge each SLO on the run's stats (latency: the worst route; rates: the total).

    A latency SLO with no measured request fails (nothing was proven).
    """
    total = next((r for r in stats if r.name == TOTAL), None)
    results = []
    for name, target in slos.items():
        if name.endswith("_ms"):
            attr = name.removesuffix("_ms")
            measured = [
                (getattr(r, attr), r.name)
                for r in stats
                if r.requests and getattr(r, attr) is not None
            ]
            if not measured:
                results.append(SloResult(name, target, None, "no requests", False))
                continue
            value, where = max(measured, key=lambda vw: vw[0])
            results.append(SloResult(name, target, value, where, value <= target))
        elif name == "error_rate":
            value = total.error_rate if total else 1.0
            results.append(SloResult(name, target, value, TOTAL, value <= target))
        elif name == "min_rps":
            value = total.rps if total else 0.0
            results.append(SloResult(name, target, value, TOTAL, value >= target))
    return results
