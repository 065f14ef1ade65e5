"""The re-fit scheduler: when to learn, from the drop configs.

Rules (issue #5):

- **A window closed**: when any drop window ended after the last re-fit started,
  re-fit now (the freshest data of a drop is its window's sales).
- **Cadence between windows**: otherwise re-fit every
  ``defaults.refit_cadence_minutes`` since the last re-fit.
- **Not inside an open window**: a drop whose window is open right now keeps its
  live surfaces (its SKUs are *frozen* for that re-fit) unless the drop sets
  ``refit_during_window: true``. When every drop is frozen there is nothing to
  re-fit and the scheduler waits.
- **Nothing configured, nothing scheduled**: while the live config has no drop
  (none applied yet) no scheduled re-fit runs.
- **Operator requests** (``POST /v1/admin/refit``) run at the next tick whatever the
  schedule says (frozen drops stay frozen).

:class:`Scheduler` is pure (times in, decisions out); :func:`run_worker` is the loop
that asks it each tick and runs :class:`service.refit.Refitter`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from service.config.models import ConfigBundle
from service.drops import frozen_skus, open_drops

if TYPE_CHECKING:
    from service.refit import RefitRecord, Refitter

__all__ = ["Decision", "Scheduler", "frozen_skus", "open_drops", "run_worker"]

log = logging.getLogger("dropprice.worker")


@dataclass(frozen=True)
class Decision:
    """What the scheduler wants at one tick."""

    due: bool
    """Run a re-fit now."""
    reason: str
    """Why (or why not), for the log: ``window_closed``, ``cadence``, ``all_frozen``,
    ``no_drops``, ``wait``."""
    next_check: datetime
    """When the answer may change (the next window end or cadence tick)."""


class Scheduler:
    """Decides when the next re-fit is due from the drop configs.

    Example:
        >>> sched = Scheduler(bundle)  # doctest: +SKIP
        >>> sched.decide(now, last_refit=None).due  # doctest: +SKIP
        True
    """

    def __init__(self, bundle: ConfigBundle) -> None:
        self.bundle = bundle
        self.cadence = timedelta(minutes=bundle.defaults.refit_cadence_minutes)

    def _window_ends(self) -> Iterable[datetime]:
        for drop in self.bundle.drops:
            for w in drop.windows:
                yield w.end

    def decide(self, now: datetime, last_refit: datetime | None) -> Decision:
        """Whether a re-fit is due at ``now`` given when the last one started.

        Args:
            now: current time (tz-aware).
            last_refit: start of the last re-fit (tz-aware), ``None`` if never.

        Returns:
            A :class:`Decision`.
        """
        if now.tzinfo is None:
            raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
        if not self.bundle.drops:  # no live config yet, or every drop removed
            return Decision(False, "no_drops", now + self.cadence)
        later_ends = sorted(e for e in self._window_ends() if e > now)
        next_end = later_ends[0] if later_ends else now + self.cadence
        all_frozen = bool(self.bundle.drops) and all(
            any(w.start <= now < w.end for w in d.windows) and not d.refit_during_window
            for d in self.bundle.drops
        )
        if all_frozen:
            return Decision(False, "all_frozen", min(next_end, now + self.cadence))
        if last_refit is None:
            return Decision(True, "first", now + self.cadence)
        if any(last_refit < e <= now for e in self._window_ends()):
            return Decision(True, "window_closed", now + self.cadence)
        due_at = last_refit + self.cadence
        if now >= due_at:
            return Decision(True, "cadence", now + self.cadence)
        return Decision(False, "wait", min(due_at, next_end))


def run_worker(
    make_refitter: Callable[[], Refitter],
    *,
    poll_seconds: float = 1.0,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_record: Callable[[RefitRecord], None] | None = None,
) -> None:
    """Run re-fits on schedule and on operator request until ``stop`` is set (or SIGTERM).

    Each tick: run any queued operator request first, then ask the
    :class:`Scheduler` whether a scheduled re-fit is due. The last re-fit's start time
    is kept in Redis, so a restarted worker keeps the cadence. Another worker holding
    the lock is not an error: that tick simply does nothing.

    Args:
        make_refitter: builds a :class:`~service.refit.Refitter` on the live config
            version (called each tick, so a version applied meanwhile is picked up).
        poll_seconds: how often to look for requests and check the schedule.
        stop: set it to end the loop; SIGTERM/SIGINT set it too in the main thread.
        clock: the time source (tests pass a fake).
        on_record: called with every finished re-fit record.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        refitter = make_refitter()
        record: RefitRecord | None = None
        request = refitter.state.pop_request()
        if request is not None:
            record = refitter.run(record_id=request)
        else:
            now = clock()
            decision = Scheduler(refitter.bundle).decide(now, refitter.state.last_refit_at())
            if decision.due:
                log.info("re-fit due", extra={"reason": decision.reason})
                record = refitter.run(trigger=decision.reason)
        if record is not None and on_record is not None:
            on_record(record)
        stop.wait(poll_seconds)
