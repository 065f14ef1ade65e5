"""Dead letters: stream entries the re-fit could not decode (role ``operator`` or higher).

The re-fit moves an entry it cannot decode (:func:`service.codec.split_poisoned`) to
the dead-letter stream with its reason and acknowledges it, so one bad entry never
blocks learning. Operators look at them and drop them here (or with
``dropprice dead-letters``):

- ``GET /v1/admin/dead-letters``: the kept ones, oldest first (``after`` pages on), and
  how many were ever dead-lettered.
- ``DELETE /v1/admin/dead-letters/{id}``: drop one; ``DELETE /v1/admin/dead-letters``:
  drop them all. Each drop is audited (``deadletter.drop``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from service.audit import record_audit
from service.deps import OperatorCaller, StoreDep
from service.schemas import ErrorBody

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["admin"])

_STREAM_ID = r"^[0-9]{1,20}-[0-9]{1,20}$"
DeadLetterId = Annotated[
    str, Path(pattern=_STREAM_ID, description="Id in the dead-letter stream, e.g. 1764-0.")
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeadLetterOut(_Out):
    """One entry a reader could not decode."""

    id: str = Field(description="Id in the dead-letter stream (what DELETE takes).")
    stream: str = Field(description="The SKU stream it came from.")
    entry_id: str = Field(description="Its id in that stream.")
    sku: str
    group: str = Field(description="The consumer group that could not decode it.")
    reason: str = Field(description="Why, naming the field and the value.")
    at: str = Field(description="When it was dead-lettered (ISO 8601, UTC).")
    fields: dict[str, str] = Field(description="The entry's fields as they were.")


class DeadLettersOut(_Out):
    dead_letters: list[DeadLetterOut]
    kept: int = Field(description="Dead letters kept now.")
    total: int = Field(description="Entries ever dead-lettered (drops do not lower it).")


class DroppedOut(_Out):
    dropped: int


@router.get("", response_model=DeadLettersOut, summary="Stream entries no reader could decode")
def list_dead_letters(
    store: StoreDep,
    caller: OperatorCaller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None, Query(pattern=_STREAM_ID, description="Only ids after this one.")
    ] = None,
) -> dict[str, Any]:
    """The kept dead letters, oldest first, each with its reason and fields."""
    kept, total = store.dead_letter_counts()
    letters = store.dead_letters(count=limit, after=after)
    return {"dead_letters": [d.to_dict() for d in letters], "kept": kept, "total": total}


@router.delete(
    "/{dead_letter_id}",
    response_model=DroppedOut,
    responses={404: {"model": ErrorBody}},
    summary="Drop one dead letter",
)
async def drop_dead_letter(
    dead_letter_id: DeadLetterId, store: StoreDep, caller: OperatorCaller
) -> dict[str, Any]:
    """Delete one dead letter (404 when there is none with that id)."""
    dropped = await run_in_threadpool(store.drop_dead_letters, [dead_letter_id])
    if not dropped:
        raise HTTPException(
            404,
            detail={
                "error": "not_found",
                "detail": f"no dead letter {dead_letter_id!r}; "
                "GET /v1/admin/dead-letters lists them",
            },
        )
    await run_in_threadpool(_audit, store, caller.key_id, [dead_letter_id], dropped)
    return {"dropped": dropped}


@router.delete("", response_model=DroppedOut, summary="Drop every dead letter")
async def drop_all_dead_letters(store: StoreDep, caller: OperatorCaller) -> dict[str, Any]:
    """Delete every kept dead letter; the lifetime count stays."""
    dropped = await run_in_threadpool(store.drop_dead_letters, None)
    await run_in_threadpool(_audit, store, caller.key_id, None, dropped)
    return {"dropped": dropped}


def _audit(store: Any, actor: str, ids: list[str] | None, dropped: int) -> None:
    record_audit(store, "deadletter.drop", actor, {"ids": ids or "all", "dropped": dropped})
