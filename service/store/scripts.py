"""The Lua scripts of the Redis layer, read from ``service/lua/``.

Every script the store runs lives there as a ``.lua`` file (one file, one script,
its keys and arguments described at its top), so a script is read and reviewed as
Lua rather than as a string inside Python. A line ``-- @include <file>.lua`` is
replaced by that file's text when the script is loaded: a rule shared by several
scripts and by Python (``cell.lua``, :func:`service.store.cells.cell`) is written once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.commands.core import Script

__all__ = ["LUA_DIR", "load", "register"]

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
"""``service/lua/``."""


_INCLUDE = "-- @include "


def load(name: str) -> str:
    """The source of ``service/lua/<name>.lua``, its ``-- @include`` lines expanded."""
    lines = (LUA_DIR / f"{name}.lua").read_text().splitlines(keepends=True)
    return "".join(
        load(line[len(_INCLUDE) :].strip().removesuffix(".lua"))
        if line.startswith(_INCLUDE)
        else line
        for line in lines
    )


def register(client: Any, name: str) -> Script:
    """``service/lua/<name>.lua`` registered on ``client`` (run by ``EVALSHA``)."""
    return client.register_script(load(name))  # type: ignore[no-any-return]
