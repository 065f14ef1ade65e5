"""YAML reading that remembers where every value came from.

Operators fix config errors from the message alone, so each problem is reported
as ``file:LINE field.path``. PyYAML's composer keeps a start mark on every node;
:func:`load_yaml_with_lines` walks the node tree once, records the line of each
mapping key and sequence item under its field path, and constructs the plain
Python data from the same tree (one parse). Keys repeated inside one mapping are
reported instead of being silently overwritten, which is PyYAML's default.

Example:
    >>> doc = load_yaml_with_lines("id: x\\nskus:\\n  - sku: A\\n    list_price: 3\\n")
    >>> doc.data["skus"][0]["sku"], doc.lines.line_of(("skus", 0, "list_price"))
    ('A', 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import yaml

__all__ = ["LineMap", "PathPart", "YamlDocument", "format_path", "load_yaml_with_lines"]

PathPart = str | int

# libyaml's parser keeps the same start marks and is ~10x faster on a 1,000-SKU file.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: Sequence[PathPart]) -> str:
    """Render a field path the way operators read it: ``skus[2].guardrails.floor``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class LineMap:
    """Field path -> 1-based line number of the key (or list item) that holds it."""

    def __init__(self, lines: dict[tuple[PathPart, ...], int] | None = None) -> None:
        self._lines: dict[tuple[PathPart, ...], int] = dict(lines or {})

    def __contains__(self, path: object) -> bool:
        return path in self._lines

    def __len__(self) -> int:
        return len(self._lines)

    def set(self, path: tuple[PathPart, ...], line: int) -> None:
        self._lines[path] = line

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        """Line of ``path``, else of its closest ancestor that exists in the file.

        A missing required field is reported on the mapping that should hold it.
        """
        parts = tuple(path)
        while parts:
            if parts in self._lines:
                return self._lines[parts]
            parts = parts[:-1]
        return self._lines.get((), None)

    def resolve(self, path: Sequence[PathPart]) -> tuple[PathPart, ...]:
        """Drop parts of a validator's location that are not in the document.

        pydantic inserts tags such as ``function-after[...]`` or ``[key]`` in locations;
        parts that do not exist below the longest existing prefix are kept only when
        they are plain field names (a missing field), so paths stay readable.
        """
        out: list[PathPart] = []
        for part in path:
            if isinstance(part, str) and (part.startswith(("function-", "[")) or "[" in part):
                continue
            out.append(part)
        return tuple(out)


class YamlDocument(NamedTuple):
    """One parsed YAML document: the data, where each field is, and key-level problems."""

    data: Any
    lines: LineMap
    duplicate_keys: tuple[tuple[tuple[PathPart, ...], int, str], ...]
    """(path, line, key) of every key that appears twice in one mapping."""


def _scalar_key(node: yaml.Node, loader: Any) -> PathPart:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_object(node, deep=True)
        if isinstance(value, bool | int | float | str):
            return value if isinstance(value, int | str) else str(value)
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "<complex key>"


def _walk(
    node: yaml.Node,
    path: tuple[PathPart, ...],
    lines: LineMap,
    dups: list[tuple[tuple[PathPart, ...], int, str]],
    loader: Any,
    seen: set[int],
) -> None:
    if id(node) in seen:  # an alias repeats a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys_here: set[PathPart] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = _scalar_key(key_node, loader)
            line = key_node.start_mark.line + 1
            if key in keys_here:
                dups.append((path, line, str(key)))
            keys_here.add(key)
            child = (*path, key)
            lines.set(child, line)
            _walk(value_node, child, lines, dups, loader, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            lines.set(child, item.start_mark.line + 1)
            _walk(item, child, lines, dups, loader, seen)


MAX_VALUES = 2_000_000
"""Largest number of values a document may expand to (anchors and aliases counted as
copies): a few lines of nested aliases can otherwise stand for billions of values."""


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(v, memo) for _, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        total = 1
    memo[key] = total
    return total


def load_yaml_with_lines(text: str, *, source: str = "<string>") -> YamlDocument:
    """Parse one YAML document and map every field path to its line.

    Args:
        text: the YAML text.
        source: file name, used only in PyYAML's own error messages.

    Returns:
        A :class:`YamlDocument`; an empty document gives ``data={}``.

    Raises:
        yaml.YAMLError: the text is not YAML (its ``problem_mark`` has the line).
    """
    loader = _Loader(text)
    if hasattr(loader, "name"):
        loader.name = source
    try:
        node = loader.get_single_node()
        lines = LineMap()
        dups: list[tuple[tuple[PathPart, ...], int, str]] = []
        if node is None:
            return YamlDocument({}, lines, ())
        lines.set((), node.start_mark.line + 1)
        size = _expanded_size(node, {})
        if size > MAX_VALUES:
            raise yaml.YAMLError(
                f"document expands to {size:,} values through aliases, allowed at most "
                f"{MAX_VALUES:,}: write the values out instead of nesting anchors"
            )
        _walk(node, (), lines, dups, loader, set())
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return YamlDocument(data if data is not None else {}, lines, tuple(dups))
