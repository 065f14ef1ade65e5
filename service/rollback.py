"""Surface rollback that restores a version whole, or refuses and says what would stay.

A surface version holds surfaces for the (SKU, market) pairs its re-fit published: a
re-fit that held some changes for approval publishes the others, and the approval
publishes the held ones later as a version of their own. Switching the live pointers
to an older version's surfaces (:meth:`service.store.PriceStore.rollback`) moves only
the pairs that version has; a pair it has no surface for would keep serving a later
version, e.g. a price approved after it.

:func:`plan_rollback` lists those pairs; :func:`rollback_whole` rolls back only when
there are none, so after a rollback exactly the target's pairs are live on it and
nothing published later stays; otherwise it raises :class:`RollbackRefused`, whose
message names every pair that would stay and the kept versions that would restore
whole.

Example:
    >>> plan = plan_rollback(store)            # doctest: +SKIP
    >>> plan.target.version, plan.stays        # doctest: +SKIP
    ('v20261205T170000-f2', (('CMX-PIN-001', 'brooklyn-panel-page', 'v...-f3'),))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from service.exceptions import DropPriceError

__all__ = ["RollbackPlan", "RollbackRefused", "pick_target", "plan_rollback", "rollback_whole"]

_NOT_RESTORABLE = frozenset({"evicted", "superseded", "writing"})


class RollbackPlan(NamedTuple):
    """What a rollback to ``target`` would do."""

    target: Any
    """The :class:`service.store.VersionInfo` to serve again."""
    live: str | None
    """The live version before the rollback."""
    stays: tuple[tuple[str, str, str], ...]
    """``(sku, market, live version)`` served now that the target has no surface for."""
    whole: tuple[str, ...]
    """Kept versions a rollback to which would leave nothing behind."""

    def refusal(self) -> str:
        """Why a rollback to the target is refused, naming what would stay."""
        shown = ", ".join(f"{s}/{m} (live on {v})" for s, m, v in self.stays[:20])
        more = f" and {len(self.stays) - 20} more" if len(self.stays) > 20 else ""
        hint = (
            f"; versions that restore whole: {', '.join(self.whole)}"
            if self.whole
            else "; no kept version restores every served pair"
        )
        return (
            f"rollback to {self.target.version} refused: it has no surface for "
            f"{len(self.stays)} pair(s) served now, which would stay live: {shown}{more}{hint}"
        )


class RollbackRefused(DropPriceError, ValueError):
    """The target version does not cover every pair served now (see :attr:`plan`)."""

    def __init__(self, plan: RollbackPlan) -> None:
        super().__init__(plan.refusal())
        self.plan = plan


def pick_target(infos: Sequence[Any], live: str | None, to: str | None) -> Any:
    """The version to restore: ``to``, else the newest kept one published before ``live``.

    Raises:
        ValueError: ``to`` is not a kept version, or nothing older is kept.
    """
    kept = [v.version for v in infos]
    if to is not None:
        found = next((v for v in infos if v.version == to), None)
        if found is None or found.status in _NOT_RESTORABLE:
            raise ValueError(f"unknown or evicted surface version {to!r}; kept versions are {kept}")
        return found
    live_info = next((v for v in infos if v.version == live), None)
    older = [
        v
        for v in infos
        if v.version != live
        and v.status not in _NOT_RESTORABLE
        and (live_info is None or v.published_at <= live_info.published_at)
    ]
    if not older:
        raise ValueError(f"nothing to roll back to: kept versions are {kept}, live is {live!r}")
    return older[0]


def _served(store: Any, infos: Sequence[Any]) -> dict[tuple[str, str], str]:
    """``{(sku, market): live version}`` of every pair served from a surface now."""
    skus = set(store.skus())
    for v in infos:
        skus.update(sku for sku, _ in v.pairs)
    pointers = store.live_pointers(sorted(skus))
    return {
        (sku, market): version
        for sku, markets in pointers.items()
        for market, version in markets.items()
    }


def plan_rollback(store: Any, to: str | None = None) -> RollbackPlan:
    """What rolling back to ``to`` (default: the previous version) would leave behind.

    Raises:
        ValueError: no such kept version, or nothing to roll back to.
    """
    infos = store.list_versions()
    live = store.live_version()
    target = pick_target(infos, live, to)
    served = _served(store, infos)

    def left_behind(pairs: Sequence[tuple[str, str]], version: str) -> list[tuple[str, str, str]]:
        have = set(pairs)
        return sorted(
            (sku, market, v)
            for (sku, market), v in served.items()
            if v != version and (sku, market) not in have
        )

    whole = tuple(
        v.version
        for v in infos
        if v.version != live
        and v.status not in _NOT_RESTORABLE
        and not left_behind(v.pairs, v.version)
    )
    return RollbackPlan(target, live, tuple(left_behind(target.pairs, target.version)), whole)


def rollback_whole(store: Any, to: str | None = None) -> tuple[RollbackPlan, Any]:
    """Serve ``to`` (default: the previous version) again, whole, or refuse.

    Returns:
        The plan and the store's :class:`~service.store.PublishResult`.

    Raises:
        RollbackRefused: a pair served now has no surface in the target (nothing moved).
        ValueError: no such kept version, or nothing to roll back to.
        PublishSuperseded: a later publish moved the pointers during the rollback.
    """
    plan = plan_rollback(store, to)
    if plan.stays:
        raise RollbackRefused(plan)
    return plan, store.rollback(plan.target.version)
