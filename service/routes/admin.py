"""Operator endpoints for re-fits and approvals (role ``operator`` or higher).

- ``POST /v1/admin/refit``: queue a re-fit for the worker (``dropprice worker``);
  answers ``202`` with the queued record. The worker runs it at its next tick.
- ``GET /v1/admin/refits/{id}``: the record: ``state``, stage timings, device,
  reasons, the version it published. ``GET /v1/admin/refits``: the latest ones.
- ``GET /v1/admin/approvals``: price changes a re-fit held because they move a live
  price by more than the approval band.
- ``POST /v1/admin/approvals/{id}``: ``approve`` (publish them as a new version, all
  or some SKUs) or ``reject``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from pricing.fields import IDENTIFIER_PATTERN
from service.deps import ConfigDep, OperatorCaller, StoreDep
from service.exceptions import ApprovalNotFound, RefitLocked
from service.refit import RefitState

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])

RefitId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN, description="Re-fit id."),
]


class RefitRequestIn(BaseModel):
    """Body of ``POST /v1/admin/refit`` (optional)."""

    model_config = ConfigDict(extra="forbid")
    force: StrictBool = False
    """Publish even when no event arrived since the last re-fit."""


class StageOut(BaseModel):
    name: str
    seconds: float
    detail: dict[str, Any] = Field(default_factory=dict)


class RefitOut(BaseModel):
    """A re-fit record."""

    id: str
    state: Literal["queued", "running", "published", "held", "no_change", "locked", "failed"]
    trigger: str
    requested_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    device: str | None
    fence: int | None
    stages: list[StageOut]
    reasons: list[str]
    version: str | None
    previous_version: str | None
    approval_id: str | None
    events_read: int
    dead_lettered: int = Field(
        default=0, description="Entries that could not be decoded: dead-lettered, acknowledged."
    )
    summary: dict[str, Any]
    config_version: int | None = Field(
        default=None, description="The live operator config version the re-fit ran on."
    )


class RefitListOut(BaseModel):
    refits: list[RefitOut]


class ChangeOut(BaseModel):
    sku: str
    market: str
    live_price: float
    new_price: float
    change_pct: float
    band_pct: float


class ApprovalOut(BaseModel):
    """Price changes held for an operator."""

    id: str
    refit_id: str
    fit_id: str
    status: Literal["pending", "approved", "rejected", "superseded"]
    created_at: str
    decided_at: str | None
    decided_by: str | None
    note: str
    version: str | None
    changes: list[ChangeOut]


class ApprovalListOut(BaseModel):
    approvals: list[ApprovalOut]


class DecisionIn(BaseModel):
    """Body of ``POST /v1/admin/approvals/{id}``."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=1000)
    skus: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    """Approve only these SKUs' changes (default: all of them)."""


def _not_found(detail: str) -> HTTPException:
    return HTTPException(404, detail={"error": "not_found", "detail": detail})


@router.post("/refit", status_code=202, response_model=RefitOut)
def request_refit(
    store: StoreDep, caller: OperatorCaller, body: RefitRequestIn | None = None
) -> dict[str, Any]:
    """Queue a re-fit; the worker picks it up at its next tick."""
    record = RefitState(store).request(requested_by=caller.key_id, force=bool(body and body.force))
    return record.to_dict()


@router.get("/refits", response_model=RefitListOut)
def list_refits(store: StoreDep, caller: OperatorCaller) -> dict[str, Any]:
    """The latest re-fits, newest first."""
    return {"refits": [r.to_dict() for r in RefitState(store).list_records(20)]}


@router.get("/refits/{refit_id}", response_model=RefitOut)
def get_refit(refit_id: RefitId, store: StoreDep, caller: OperatorCaller) -> dict[str, Any]:
    """One re-fit's record: state, stage timings, device, reasons, version."""
    record = RefitState(store).get_record(refit_id)
    if record is None:
        raise _not_found(f"no re-fit {refit_id!r}; GET /v1/admin/refits lists the latest")
    return record.to_dict()


@router.get("/approvals", response_model=ApprovalListOut)
def list_approvals(store: StoreDep, caller: OperatorCaller) -> dict[str, Any]:
    """Pending approvals, newest first."""
    return {"approvals": [a.to_dict() for a in RefitState(store).pending_approvals()]}


@router.post("/approvals/{approval_id}", response_model=ApprovalOut)
async def decide_approval(
    approval_id: RefitId,
    body: DecisionIn,
    store: StoreDep,
    config: ConfigDep,
    caller: OperatorCaller,
    x_actor: Annotated[
        str, Header(max_length=100, pattern=r"\S", description="The person deciding (required).")
    ],
) -> dict[str, Any]:
    """Approve (publish as a new version) or reject held price changes. ``X-Actor``
    names the person deciding (required): the approval's ``decided_by`` and the audit
    record that person."""
    from service.operator_tools import decide_approval as decide

    if not (x_actor and x_actor.strip()):
        raise HTTPException(
            422,
            detail={
                "error": "invalid_request",
                "detail": [
                    {
                        "field": "X-Actor",
                        "message": "name the person deciding in the X-Actor header",
                        "got": x_actor,
                    }
                ],
            },
        )
    try:
        approval = await run_in_threadpool(
            lambda: decide(
                store,
                config,
                approval_id,
                approve=body.decision == "approve",
                person=x_actor,
                note=body.note,
                skus=body.skus,
                owner=f"api:{caller.key_id}",
            )
        )
    except ApprovalNotFound as exc:
        raise _not_found(str(exc)) from exc
    except RefitLocked as exc:
        raise HTTPException(
            409,
            detail={"error": "refit_running", "detail": str(exc)},
            headers={"Retry-After": "30"},
        ) from exc
    return approval.to_dict()
