"""``dropprice dead-letters``: list and drop stream entries the re-fit could not decode.

Examples::

    dropprice dead-letters list                  # the kept ones, with their reasons
    dropprice dead-letters list --json
    dropprice dead-letters drop 1764460800000-0  # one (or several) by id
    dropprice dead-letters drop --all
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from service.commands.redis_option import (
    DEFAULT_DATA_DIR,
    FROM_DATA_DIR,
    DataDirOpt,
    RedisUrlOpt,
)

if TYPE_CHECKING:
    from service.store import PriceStore

__all__ = ["dead_letters_app", "register"]

dead_letters_app = typer.Typer(
    help="Stream entries the re-fit could not decode (moved aside, acknowledged).",
    no_args_is_help=True,
)


def _store(redis_url: str) -> PriceStore:
    from service.store import PriceStore, connect

    return PriceStore(connect(redis_url, timeout=5.0))


@dead_letters_app.command("list")
def list_(
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The kept dead letters, oldest first, and how many there ever were."""
    store = _store(redis_url)
    try:
        kept, total = store.dead_letter_counts()
        letters = store.dead_letters(count=limit)
    finally:
        store.close()
    if as_json:
        body = {"dead_letters": [d.to_dict() for d in letters], "kept": kept, "total": total}
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(f"{kept} dead letter(s) kept, {total} ever")
    for d in letters:
        typer.echo(f"{d.id}  {d.sku}  {d.stream} {d.entry_id}  {d.reason}")


@dead_letters_app.command("drop")
def drop(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids to drop.")] = None,
    drop_all: Annotated[bool, typer.Option("--all", help="Drop every dead letter.")] = False,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    actor: Annotated[str, typer.Option(help="Who drops them (kept in the audit).")] = "cli",
) -> None:
    """Drop dead letters by id, or all of them with --all (audited)."""
    if bool(ids) == drop_all:
        raise typer.BadParameter("give dead-letter ids or --all (one of the two)")
    from service.audit import record_audit

    store = _store(redis_url)
    try:
        dropped = store.drop_dead_letters(None if drop_all else list(ids or []))
        record_audit(
            store,
            "deadletter.drop",
            actor,
            {"ids": "all" if drop_all else list(ids or []), "dropped": dropped},
        )
    finally:
        store.close()
    typer.echo(f"dropped {dropped} dead letter(s)")


def register(app: typer.Typer) -> None:
    """Add ``dropprice dead-letters`` to ``app``."""
    app.add_typer(dead_letters_app, name="dead-letters")
