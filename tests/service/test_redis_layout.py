"""``docs/redis-layout.md`` and the Redis layer agree: keys, channels and scripts.

Every key builder of :mod:`service.keys` is documented in the layout's key table and
every key there has a builder; every script under ``service/lua/`` is documented and
loads; no Lua is written inside Python modules of ``service/``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

from service import keys
from service.store import scripts

REPO = Path(__file__).resolve().parents[2]
LAYOUT = (REPO / "docs" / "redis-layout.md").read_text()

_NOT_KEYS = {"sku_tag", "surface_prefix"}
"""Builders of key prefixes, not keys (the sale script appends the rest)."""
_PLACEHOLDER = {
    "sku": "sku",
    "market": "<market>",
    "version": "<v>",
    "event_id": "<event_id>",
    "refit_id": "<id>",
    "fit_id": "<id>",
    "approval_id": "<id>",
}
_NUMBER = 987_654_321
"""Stands in for an integer argument; shown as ``<n>`` in the layout."""


def _builders() -> dict[str, Callable[..., str]]:
    return {
        name: obj
        for name in keys.__all__
        if callable(obj := getattr(keys, name)) and name not in _NOT_KEYS
    }


def _pattern(builder: Callable[..., str]) -> str:
    """The key as the layout writes it, e.g. ``dp:{sku}:inv:<market>``."""
    params = inspect.signature(builder).parameters
    try:
        return builder(*[_PLACEHOLDER[p] for p in params])
    except (TypeError, ValueError):  # an integer argument (a config version number)
        return builder(*[_NUMBER for _ in params]).replace(str(_NUMBER), "<n>")


def _documented_keys() -> set[str]:
    table = LAYOUT.split("## Keys", 1)[1].split("\n\n", 2)[1]
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", table, re.M)}


def test_every_key_builder_is_documented_and_every_documented_key_has_one() -> None:
    built = {name: _pattern(b) for name, b in _builders().items()}
    documented = _documented_keys()
    undocumented = {name: k for name, k in built.items() if k not in documented}
    assert not undocumented, f"key builders missing from docs/redis-layout.md: {undocumented}"
    orphans = documented - set(built.values())
    assert not orphans, f"keys in docs/redis-layout.md without a builder in service.keys: {orphans}"
    assert len(documented) == len(built) >= 39


def test_every_channel_is_documented() -> None:
    for channel in (keys.UPDATES_CHANNEL, keys.CONFIG_CHANNEL):
        assert f"`{channel}`" in LAYOUT


def test_every_script_is_documented_and_loads() -> None:
    names = sorted(p.stem for p in scripts.LUA_DIR.glob("*.lua"))
    table = LAYOUT.split("## Scripts", 1)[1]
    documented = set(re.findall(r"^\| `(\w+)\.lua` \|", table, re.M))
    assert documented == set(names)
    for name in names:
        assert "-- @include" not in scripts.load(name)  # includes are expanded


def test_no_lua_is_written_inside_python() -> None:
    inline = [
        str(p.relative_to(REPO))
        for p in (REPO / "service").rglob("*.py")
        if "redis.call(" in p.read_text()
    ]
    assert inline == []
