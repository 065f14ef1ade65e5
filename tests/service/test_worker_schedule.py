"""The re-fit schedule: window closes, cadence between windows, frozen open windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.config.models import ConfigBundle, Defaults, DropConfig, DropWindow, SkuConfig
from service.worker import Scheduler, frozen_skus

T0 = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)


def _drop(drop_id: str, start: datetime, hours: int, *, during: bool = False) -> DropConfig:
    return DropConfig(
        id=drop_id,
        markets=("m",),
        windows=(DropWindow(start=start, end=start + timedelta(hours=hours)),),
        skus=(
            SkuConfig(sku=f"{drop_id}-1", category="comics", list_price=10.0, inventory={"m": 5}),
        ),
        refit_during_window=during,
    )


def _bundle(*drops: DropConfig) -> ConfigBundle:
    return ConfigBundle(defaults=Defaults(refit_cadence_minutes=60), drops=drops)


def test_refit_when_a_window_closes_even_before_the_cadence() -> None:
    sched = Scheduler(_bundle(_drop("a", T0, 2)))
    last = T0 + timedelta(hours=1, minutes=50)
    assert not sched.decide(T0 + timedelta(hours=1, minutes=55), last).due
    decision = sched.decide(T0 + timedelta(hours=2, minutes=1), last)
    assert decision.due and decision.reason == "window_closed"


def test_cadence_between_windows() -> None:
    sched = Scheduler(_bundle(_drop("a", T0, 2)))
    before = T0 - timedelta(hours=5)
    assert not sched.decide(before, before - timedelta(minutes=30)).due
    decision = sched.decide(before, before - timedelta(minutes=61))
    assert decision.due and decision.reason == "cadence"
    assert sched.decide(before, None).due


def test_no_refit_inside_an_open_window_unless_allowed() -> None:
    inside = T0 + timedelta(minutes=30)
    sched = Scheduler(_bundle(_drop("a", T0, 2)))
    decision = sched.decide(inside, inside - timedelta(hours=3))
    assert not decision.due and decision.reason == "all_frozen"
    assert decision.next_check <= T0 + timedelta(hours=2)
    allowed = Scheduler(_bundle(_drop("a", T0, 2, during=True)))
    assert allowed.decide(inside, inside - timedelta(hours=3)).due


def test_only_the_open_drops_skus_are_frozen() -> None:
    bundle = _bundle(
        _drop("a", T0, 2), _drop("b", T0 + timedelta(days=1), 2), _drop("c", T0, 2, during=True)
    )
    inside = T0 + timedelta(minutes=30)
    assert frozen_skus(bundle, inside) == frozenset({"a-1"})
    assert Scheduler(bundle).decide(inside, inside - timedelta(hours=3)).due
    assert frozen_skus(bundle, T0 - timedelta(minutes=1)) == frozenset()


def test_nothing_is_scheduled_while_the_live_config_has_no_drop() -> None:
    # A worker started before any config was applied waits instead of re-fitting nothing.
    decision = Scheduler(_bundle()).decide(T0, None)
    assert not decision.due and decision.reason == "no_drops"
    assert Scheduler(_bundle(_drop("a", T0 + timedelta(days=1), 2))).decide(T0, None).due
