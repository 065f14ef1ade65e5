"""Every write a re-fit makes under its lock is fenced (service.store.refit_state).

The start time, the fit and its index, the history, approvals and fit pruning went
partly through the raw client before; a worker whose lock was taken over must write
none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from service import keys
from service.exceptions import FenceLost
from service.store import PriceStore, connect
from service.store.refit_state import Approval, RefitState

T0 = datetime(2027, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def store(any_redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(any_redis_url, timeout=5.0))
    yield s
    s.close()


def _take(state: RefitState, owner: str) -> str:
    state.expire_lock()  # the previous holder's TTL ran out
    taken = state.acquire(owner, ttl_s=60)
    assert taken is not None
    return taken[1]


def test_a_worker_whose_lock_was_taken_over_writes_nothing(store: PriceStore) -> None:
    state = RefitState(store)
    old = _take(state, "worker-a")
    state.mark_started(old, T0.isoformat())
    state.save_results(old, fit_id="f1", fit_blob=b"fit-1", history_blob=b"h-1", at=T0)
    new = _take(state, "worker-b")
    assert new != old

    approval = Approval(id="a1", refit_id="r1", fit_id="f1", created_at=T0.isoformat())
    writes = [
        lambda: state.mark_started(old, "2027-01-02T00:00:00+00:00"),
        lambda: state.save_history(old, b"h-stale"),
        lambda: state.save_results(
            old,
            fit_id="f2",
            fit_blob=b"fit-2",
            history_blob=b"h-2",
            at=T0,
            approval=approval,
            approval_surfaces={},
        ),  # fmt: skip
        lambda: state.save_approval(old, approval),
        lambda: state.prune_fits(old, referenced=set(), keep=0),
    ]
    for write in writes:
        with pytest.raises(FenceLost, match="no longer holds"):
            write()
    # Everything is as worker-a left it while it held the lock.
    assert state.last_refit_at() == T0
    assert state.load_fit_blob("f1") == b"fit-1" and state.load_fit_blob("f2") is None
    assert store.client.get(keys.refit_history()) == b"h-1"
    assert store.client.zrange(keys.refit_fits(), 0, -1) == [b"f1"]
    assert state.get_approval("a1") is None and state.pending_approvals() == []

    # The holder writes: an approval held, then decided, and fits pruned.
    state.save_results(
        new, fit_id="f3", fit_blob=b"fit-3", history_blob=b"h-3", at=T0,
        approval=approval, approval_surfaces={},
    )  # fmt: skip
    assert [a.id for a in state.pending_approvals()] == ["a1"]
    approval.status = "rejected"
    state.save_approval(new, approval)
    assert state.pending_approvals() == []
    assert state.prune_fits(new, referenced={"f3"}, keep=0) == ["f1"]
    assert store.client.zrange(keys.refit_fits(), 0, -1) == [b"f3"]
