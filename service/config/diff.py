"""What changes between two config bundles, field by field.

Lists are matched by their natural key, not by position, so reordering SKUs is no
change and a diff reads like the operator thinks: drops by ``id``, SKUs by
``sku``, arms by ``name`` (windows and ladders stay positional). A drop, SKU or
category that appears or disappears is one line, not one line per field::

    + drops[ny-popup]: drop with 12 SKUs in 2 markets
    ~ drops[comic-shop-creator-drop].skus[CMX-VAR-001].guardrails.floor: 9.99 -> 11.99
    - categories.categories.snacks
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from service.config.models import ConfigBundle

__all__ = ["ConfigChange", "diff_bundles", "summarize"]

_LIST_KEYS = {"drops": "id", "skus": "sku", "arms": "name"}


class ConfigChange(NamedTuple):
    """One changed field (or added/removed object)."""

    op: Literal["added", "removed", "changed"]
    path: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.op == "changed":
            return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"
        if self.op == "added":
            return f"+ {self.path}: {_describe(self.path, self.new)}"
        return f"- {self.path}"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "old": self.old, "new": self.new}


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _describe(path: str, value: Any) -> str:
    if isinstance(value, dict) and "skus" in value and "markets" in value:
        return f"drop with {len(value['skus'])} SKUs in {len(value['markets'])} markets"
    return _show(value)


def _keyed(items: list[Any], key: str) -> dict[str, Any] | None:
    if not all(isinstance(x, dict) and key in x for x in items):
        return None
    out = {str(x[key]): x for x in items}
    return out if len(out) == len(items) else None


def _walk(old: Any, new: Any, path: str, field: str, out: list[ConfigChange]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{k}" if path else str(k)
            if k not in new:
                out.append(ConfigChange("removed", sub, old[k], None))
            elif k not in old:
                out.append(ConfigChange("added", sub, None, new[k]))
            else:
                _walk(old[k], new[k], sub, str(k), out)
        return
    if isinstance(old, list) and isinstance(new, list) and field in _LIST_KEYS:
        a, b = _keyed(old, _LIST_KEYS[field]), _keyed(new, _LIST_KEYS[field])
        if a is not None and b is not None:
            for k in list(a) + [k for k in b if k not in a]:
                sub = f"{path}[{k}]"
                if k not in b:
                    out.append(ConfigChange("removed", sub, a[k], None))
                elif k not in a:
                    out.append(ConfigChange("added", sub, None, b[k]))
                else:
                    _walk(a[k], b[k], sub, field, out)
            return
    out.append(ConfigChange("changed", path, old, new))


def diff_bundles(old: ConfigBundle | None, new: ConfigBundle) -> list[ConfigChange]:
    """Every difference from ``old`` (``None``: nothing live yet) to ``new``.

    Example:
        >>> diff_bundles(ConfigBundle(), ConfigBundle())
        []
    """
    # From nothing, diff against an empty bundle so each drop and category is one line.
    before = (old if old is not None else ConfigBundle()).model_dump(mode="json")
    after = new.model_dump(mode="json")
    out: list[ConfigChange] = []
    _walk(before, after, "", "", out)
    return out


def summarize(changes: list[ConfigChange]) -> str:
    """One line for logs and the version list: ``3 changed, 1 added, 0 removed``."""
    counts = {op: sum(c.op == op for c in changes) for op in ("changed", "added", "removed")}
    if not changes:
        return "no changes"
    return ", ".join(f"{n} {op}" for op, n in counts.items())
