"""The ``--redis-url`` / ``--data-dir`` pair of every command that talks to a running system.

With ``--redis-url`` (or ``DROPPRICE_REDIS_URL``) a command uses that Redis; without,
it finds the embedded Redis that ``dropprice serve`` runs on its data folder
(``--data-dir``, default ``.dropprice/redis``, the same as ``serve``'s), password
included (:func:`service.embedded.resolve_redis_url`). A command declares both and
receives the URL to use::

    def versions(redis_url: RedisUrlOpt = FROM_DATA_DIR, data_dir: DataDirOpt = DEFAULT_DATA_DIR):
        store = PriceStore(connect(redis_url))

A command that reads Redis only on some paths (``signals`` with ``--events``) takes
:data:`LazyRedisUrlOpt` and calls :func:`resolve_or_exit` on those paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "DEFAULT_DATA_DIR",
    "FROM_DATA_DIR",
    "DataDirOpt",
    "LazyRedisUrlOpt",
    "RedisUrlOpt",
    "resolve_or_exit",
]

DEFAULT_DATA_DIR = Path(".dropprice/redis")
"""``dropprice serve``'s default data folder (``service.embedded.DEFAULT_DATA_DIR``)."""
FROM_DATA_DIR = ""
"""Default of ``--redis-url``: the embedded Redis of ``--data-dir``."""


def resolve_or_exit(redis_url: str | None, data_dir: Path | None) -> str:
    """The URL given, else the embedded server's of ``data_dir``; exit 2 saying how to
    start one (for a command that needs Redis only on some paths)."""
    from service.embedded import resolve_redis_url
    from service.exceptions import RedisServerError

    try:
        return resolve_redis_url(redis_url or None, data_dir)
    except RedisServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _resolve(ctx: typer.Context, value: str | None) -> str:
    if ctx.resilient_parsing:  # shell completion: nothing to resolve
        return value or FROM_DATA_DIR
    return resolve_or_exit(value, ctx.params.get("data_dir"))


DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        is_eager=True,  # read before --redis-url, whose default it decides
        help="Data folder of the `dropprice serve` whose embedded Redis to use "
        "(when no --redis-url is given).",
    ),
]
RedisUrlOpt = Annotated[
    str,
    typer.Option(
        "--redis-url",
        envvar="DROPPRICE_REDIS_URL",
        callback=_resolve,
        show_default=False,
        help="redis:// or redis+cluster:// URL of the running system. Default: the "
        "embedded Redis of `dropprice serve` on --data-dir.",
    ),
]
LazyRedisUrlOpt = Annotated[
    str,
    typer.Option(
        "--redis-url",
        envvar="DROPPRICE_REDIS_URL",
        show_default=False,
        help="redis:// or redis+cluster:// URL of the running system. Default: the "
        "embedded Redis of `dropprice serve` on --data-dir.",
    ),
]
"""``--redis-url`` of a command that may not need Redis: resolve it with
:func:`resolve_or_exit` where it does."""
