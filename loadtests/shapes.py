"""Load shapes for a drop: the checkout rush when a drop opens, and a long soak.

A drop's traffic is not a ramp. Terminals idle along at a baseline until the drop
opens, then every queue hits checkout within seconds, holds there while stock
lasts, and drains as SKUs sell out. :class:`DropRushShape` models exactly that,
as a piecewise-linear number of active terminals ``u(t)``::

    users
      ^          spike     plateau
      |           ____________________
    P |          /                    \\
      |         /                      \\   decay
      |        /                        \\
    B |_______/                          \\______
      +--------------------------------------------> t
        idle    ramp                     decay

    B = P / multiple                 (the baseline before the drop opens)
    u(t) = B                         for t < idle
         = B + (P - B)(t - idle)/ramp    while the drop opens (``ramp`` seconds)
         = P                         on the plateau
         = P - (P - B)(t - t_d)/decay    while the queue drains, then stop

:class:`SoakShape` ramps to a steady user count and holds it for the whole run:
the shape that finds slow leaks (connections, memory, stream growth).

Both shapes take the peak from ``--users`` and the total length from
``--run-time`` (``use_common_options``), so ``dropprice loadtest --users 40
--duration 60s --shape rush`` means "a 60-second rush peaking at 40 terminals".
The phase split and the spike multiple come from the locustfile's options
(``--rush-multiple``, ``--rush-ramp-s``, ``--rush-idle-frac``,
``--rush-decay-frac``); the defaults are a 10x spike reached in 5 s.

The locustfile selects a shape with ``DROPPRICE_SHAPE=rush|soak`` (locust picks
up every concrete shape class a locustfile defines, so the selection happens by
binding exactly one). The schedule itself is a pure function of elapsed time,
:func:`loadtests.plans.rush_users_at`, which the tests check directly.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from loadtests.plans import RushPlan, SoakPlan, rush_users_at, soak_users_at

__all__ = ["SHAPES", "DropRushShape", "SoakShape"]


def _option(shape: LoadTestShape, name: str, default: Any) -> Any:
    runner = shape.runner
    options = getattr(getattr(runner, "environment", None), "parsed_options", None)
    value = getattr(options, name, None)
    return default if value is None else value


class DropRushShape(LoadTestShape):
    """Idle baseline, a spike of ``--rush-multiple`` x within ``--rush-ramp-s`` seconds,
    a plateau at ``--users`` and a linear decay; stops at ``--run-time``.

    Each tick asks for the user count of :func:`rush_users_at`, with a spawn rate
    high enough to follow the schedule (a drop opens in seconds; locust's default
    spawn rate would smear the spike over a minute).
    """

    use_common_options = True
    default_peak_users = 20
    default_run_time_s = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._plan: RushPlan | None = None

    @property
    def plan(self) -> RushPlan:
        if self._plan is None:
            self._plan = RushPlan.from_run(
                peak_users=int(_option(self, "num_users", self.default_peak_users)),
                run_time_s=float(_option(self, "run_time", self.default_run_time_s)),
                multiple=float(_option(self, "rush_multiple", 10.0)),
                ramp_s=float(_option(self, "rush_ramp_s", 5.0)),
                idle_frac=float(_option(self, "rush_idle_frac", 0.2)),
                decay_frac=float(_option(self, "rush_decay_frac", 0.25)),
            )
        return self._plan

    def tick(self) -> tuple[int, float] | None:
        plan = self.plan
        users = rush_users_at(plan, self.get_run_time())
        if users is None:
            return None
        # Fast enough to climb baseline -> peak inside the ramp, and to drop instantly.
        spawn_rate = max(1.0, (plan.peak_users - plan.baseline_users) / plan.ramp_s * 2)
        return users, spawn_rate


class SoakShape(LoadTestShape):
    """Ramp to ``--users`` over the first tenth of the run (10 s at most), then hold."""

    use_common_options = True
    default_users = 20
    default_run_time_s = 600.0

    def __init__(self) -> None:
        super().__init__()
        self._plan: SoakPlan | None = None

    @property
    def plan(self) -> SoakPlan:
        if self._plan is None:
            self._plan = SoakPlan.from_run(
                users=int(_option(self, "num_users", self.default_users)),
                run_time_s=float(_option(self, "run_time", self.default_run_time_s)),
            )
        return self._plan

    def tick(self) -> tuple[int, float] | None:
        plan = self.plan
        users = soak_users_at(plan, self.get_run_time())
        if users is None:
            return None
        return users, max(1.0, plan.users / max(plan.ramp_s, 1.0))


SHAPES: dict[str, type[LoadTestShape]] = {"rush": DropRushShape, "soak": SoakShape}
"""Shape name (``--shape`` of ``dropprice loadtest``, ``DROPPRICE_SHAPE``) -> class."""
