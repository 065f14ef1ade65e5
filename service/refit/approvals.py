"""Operator decisions on held changes: approve (publish the held surfaces) or reject."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from service.audit import record_audit
from service.exceptions import ApprovalNotFound, RefitLocked
from service.refit.lock import Heartbeat
from service.store import PriceStore, SurfaceRecord
from service.store.refit_state import Approval, RefitState

__all__ = ["Approvals"]


class _Publisher(Protocol):
    store: PriceStore
    state: RefitState
    owner: str
    lock_ttl_s: float
    _heartbeat: Heartbeat
    clock: Callable[[], datetime]

    def _publish(
        self,
        lock_value: str,
        surfaces: Mapping[tuple[str, str], SurfaceRecord],
        meta: Mapping[str, Any],
    ) -> str: ...

    def _publish_approved(
        self,
        approval: Approval,
        lock_value: str,
        token: int,
        skus: Sequence[str] | None,
        decided_by: str,
    ) -> str: ...


class Approvals:
    """The approval half of :class:`service.refit.Refitter` (a mixin: it publishes with
    the re-fit's fenced :meth:`~service.refit.Refitter._publish`)."""

    def decide(
        self: _Publisher,
        approval_id: str,
        *,
        approve: bool,
        decided_by: str = "",
        note: str = "",
        skus: Sequence[str] | None = None,
    ) -> Approval:
        """Approve (publish the held surfaces as a new version) or reject a held change.

        Args:
            approval_id: from :meth:`RefitState.pending_approvals`.
            approve: publish (``True``) or discard (``False``).
            decided_by: operator name for the audit trail.
            note: free text kept with the decision.
            skus: approve only these SKUs' surfaces (default: all held ones).

        Raises:
            ApprovalNotFound: no pending approval has that id.
            RefitLocked: a re-fit is running; decide again when it has finished.
        """
        approval = self.state.get_approval(approval_id)
        if approval is None or approval.status != "pending":
            state = "unknown" if approval is None else approval.status
            raise ApprovalNotFound(f"no pending approval {approval_id!r} (it is {state})")
        lock = self.state.acquire(self.owner, self.lock_ttl_s)
        if lock is None:
            raise RefitLocked(
                f"a re-fit is running ({self.state.holder()}); decide again when it finishes"
            )
        token, lock_value = lock
        self._heartbeat = Heartbeat(self.state, lock_value, self.lock_ttl_s)
        try:
            approval.decided_at = self.clock().astimezone(UTC).isoformat()
            approval.decided_by = decided_by
            approval.note = note
            if approve:
                approval.version = self._publish_approved(
                    approval, lock_value, token, skus, decided_by
                )
                approval.status = "approved"
            else:
                approval.status = "rejected"
            record_audit(
                self.store,
                f"refit.{'approve' if approve else 'reject'}",
                decided_by or self.owner,
                {
                    "approval_id": approval.id,
                    "version": approval.version,
                    "note": note,
                    "skus": list(skus) if skus else None,
                },
            )
            self.state.save_approval(lock_value, approval)
        finally:
            self.state.release(lock_value)
        return approval

    def _publish_approved(
        self: _Publisher,
        approval: Approval,
        lock_value: str,
        token: int,
        skus: Sequence[str] | None,
        decided_by: str,
    ) -> str:
        """Publish an approval's held surfaces (only ``skus``' when given)."""
        surfaces = self.state.approval_surfaces(approval.id)
        if skus is not None:
            surfaces = {p: s for p, s in surfaces.items() if p[0] in set(skus)}
        if not surfaces:
            raise ApprovalNotFound(
                f"approval {approval.id!r} holds none of the SKUs {list(skus or [])}"
            )
        return self._publish(
            lock_value,
            surfaces,
            meta={
                "refit_id": approval.refit_id,
                "fit_id": approval.fit_id,
                "fence": token,
                "approval_id": approval.id,
                "approved_by": decided_by,
            },
        )
