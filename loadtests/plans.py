"""Drop-rush and soak schedules: how many terminals are active ``t`` seconds into a run.

Pure functions of elapsed time (no locust import, so the tests and the CLI can use
them without gevent's monkey-patching); :mod:`loadtests.shapes` turns them into
locust load shapes. The rush, as a piecewise-linear number of active terminals::

    B = ceil(P / multiple)               the baseline before the drop opens
    u(t) = B                             for t < idle
         = B + (P - B)(t - idle)/ramp    while the drop opens (``ramp`` seconds)
         = P                             on the plateau
         = P - (P - B)(t - t_d)/decay    while the queue drains; then the run stops
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["RushPlan", "SoakPlan", "rush_users_at", "soak_users_at"]


class RushPlan(NamedTuple):
    """The phases of one drop rush (seconds and users)."""

    peak_users: int
    """Terminals active on the plateau (``--users``)."""
    baseline_users: int
    """Terminals active before the drop opens: ``ceil(peak / multiple)``, at least 1."""
    idle_s: float
    """Baseline phase before the drop opens."""
    ramp_s: float
    """Seconds from baseline to peak when the drop opens."""
    plateau_s: float
    """Seconds held at the peak."""
    decay_s: float
    """Seconds from peak back to baseline while stock runs out."""

    @property
    def total_s(self) -> float:
        return self.idle_s + self.ramp_s + self.plateau_s + self.decay_s

    @classmethod
    def from_run(
        cls,
        *,
        peak_users: int,
        run_time_s: float,
        multiple: float = 10.0,
        ramp_s: float = 5.0,
        idle_frac: float = 0.2,
        decay_frac: float = 0.25,
    ) -> RushPlan:
        """Split a run of ``run_time_s`` seconds into idle, ramp, plateau and decay.

        The ramp keeps its length in seconds (a drop opens in seconds whatever the
        run length) but never takes more than a fifth of the run.

        Raises:
            ValueError: a parameter is out of range (the message names it and its value).
        """
        if peak_users < 1:
            raise ValueError(f"peak_users must be >= 1, got {peak_users}")
        if not run_time_s > 0:
            raise ValueError(f"run_time_s must be > 0 seconds, got {run_time_s}")
        if not multiple >= 1:
            raise ValueError(f"multiple must be >= 1 (peak over baseline), got {multiple}")
        if not ramp_s > 0:
            raise ValueError(f"ramp_s must be > 0 seconds, got {ramp_s}")
        if not (0 <= idle_frac < 1 and 0 <= decay_frac < 1 and idle_frac + decay_frac < 0.8):
            raise ValueError(
                f"idle_frac and decay_frac must be in [0, 1) and sum below 0.8, "
                f"got idle_frac={idle_frac} decay_frac={decay_frac}"
            )
        ramp = min(ramp_s, run_time_s / 5)
        idle = idle_frac * run_time_s
        decay = decay_frac * run_time_s
        plateau = run_time_s - idle - ramp - decay
        baseline = max(1, math.ceil(peak_users / multiple))
        return cls(peak_users, min(baseline, peak_users), idle, ramp, plateau, decay)


class SoakPlan(NamedTuple):
    """A soak: ramp to ``users`` over ``ramp_s``, hold until ``total_s``."""

    users: int
    ramp_s: float
    total_s: float

    @classmethod
    def from_run(cls, *, users: int, run_time_s: float, ramp_s: float = 10.0) -> SoakPlan:
        if users < 1:
            raise ValueError(f"users must be >= 1, got {users}")
        if not run_time_s > 0:
            raise ValueError(f"run_time_s must be > 0 seconds, got {run_time_s}")
        return cls(users, min(ramp_s, run_time_s / 10), run_time_s)


def rush_users_at(plan: RushPlan, t: float) -> int | None:
    """Active terminals ``t`` seconds into a rush; ``None`` once the rush is over."""
    if t < 0:
        raise ValueError(f"t must be >= 0 seconds, got {t}")
    p, b = plan.peak_users, plan.baseline_users
    if t < plan.idle_s:
        return b
    t -= plan.idle_s
    if t < plan.ramp_s:
        return round(b + (p - b) * t / plan.ramp_s)
    t -= plan.ramp_s
    if t < plan.plateau_s:
        return p
    t -= plan.plateau_s
    if t < plan.decay_s:
        return round(p - (p - b) * t / plan.decay_s)
    return None


def soak_users_at(plan: SoakPlan, t: float) -> int | None:
    """Active terminals ``t`` seconds into a soak; ``None`` once it is over."""
    if t < 0:
        raise ValueError(f"t must be >= 0 seconds, got {t}")
    if t >= plan.total_s:
        return None
    if t < plan.ramp_s:
        return max(1, round(plan.users * t / plan.ramp_s))
    return plan.users
