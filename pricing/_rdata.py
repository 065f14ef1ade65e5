"""A small reader for R's ``.rda`` / ``.RData`` files holding data frames (no R needed).

R saves objects in its XDR serialisation format (R Internals, §1.8 "Serialization
Formats"), usually xz-, bzip2- or gzip-compressed. This reader understands the subset
data sets are made of: numeric, integer, logical and character vectors, factors, lists,
data frames and their attributes (versions 2 and 3 of the format, with the compact
integer sequences R 3.5+ writes for row names). Anything else (closures, environments,
byte code, external pointers) is an :class:`~pricing.exceptions.InputError` naming the
type, so a data file it cannot read fails loudly rather than half-read.

Reference:
    R Core Team. *R Internals*, section 1.8, "Serialization Formats".

Example:
    >>> frames = read_rda("/usr/lib/R/site-library/bayesm/data/tuna.rda")  # doctest: +SKIP
    >>> frames["tuna"].shape  # doctest: +SKIP
    (338, 30)
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pricing.exceptions import InputError

__all__ = ["read_rda"]

_NA_INT = -(2**31)
# SEXP types (R Internals, §1.1.1) and the serialisation's pseudo-types.
_SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 1, 2, 9, 10, 13, 14, 16, 19
_ALTREP, _EMPTYENV, _BASEENV, _GLOBALENV, _NIL, _REF = 238, 242, 241, 253, 254, 255
_SPECIAL_ENVS = {_EMPTYENV, _BASEENV, _GLOBALENV, 250, 251, 252}


@dataclass
class _RObject:
    """One deserialised R object: its SEXP type, value and attributes."""

    kind: int
    value: Any
    attributes: dict[str, Any] = field(default_factory=dict)


class _Reader:
    """Reads XDR (big-endian) items from the decompressed bytes of one file."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where
        self.refs: list[Any] = []

    def _fail(self, what: str) -> InputError:
        return InputError(f"{self.where}: {what} (at byte {self.pos}); not a data file this reads")

    def read_int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def length(self) -> int:
        n = self.read_int()
        if n == -1:  # long vector: two 32-bit halves
            return (self.read_int() << 32) + self.read_int()
        return n

    def array(self, dtype: str, n: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.pos)
        self.pos += out.nbytes
        return out.astype(dtype[1:])

    def item(self) -> Any:
        flags = self.read_int()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == _NIL or kind in _SPECIAL_ENVS:
            return None
        if kind == _REF:
            index = flags >> 8 or self.read_int()
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _CHAR:
            n = self.read_int()
            if n == -1:
                return None
            text = self.data[self.pos : self.pos + n].decode("utf-8", errors="replace")
            self.pos += n
            return text
        if kind == _LIST:
            return self._pairlist(has_attr, has_tag)
        if kind == _ALTREP:
            return self._altrep()
        if kind in (_LGL, _INT):
            value: Any = self.array(">i4", self.length())
        elif kind == _REAL:
            value = self.array(">f8", self.length())
        elif kind in (_STR, _VEC):
            value = [self.item() for _ in range(self.length())]
        else:
            raise self._fail(f"unsupported R object type {kind}")
        attributes = self._pairlist_dict(self.item()) if has_attr else {}
        return _RObject(kind, value, attributes)

    def _pairlist(self, has_attr: bool, has_tag: bool) -> _RObject:
        """A pairlist as ``[(tag, value), ...]`` (read iteratively along its tail)."""
        cells: list[tuple[Any, Any]] = []
        while True:
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            cells.append((tag, self.item()))
            flags = self.read_int()
            if flags & 0xFF != _LIST:
                if flags & 0xFF != _NIL:
                    raise self._fail(f"pairlist ends in type {flags & 0xFF}")
                return _RObject(_LIST, cells)
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))

    @staticmethod
    def _pairlist_dict(obj: Any) -> dict[str, Any]:
        return {str(tag): value for tag, value in obj.value} if isinstance(obj, _RObject) else {}

    def _altrep(self) -> Any:
        info, state, attr = self.item(), self.item(), self.item()
        cls = info.value[0][1] if isinstance(info, _RObject) and info.value else None
        attributes = self._pairlist_dict(attr)
        if cls == "compact_intseq":  # (length, start, step) as doubles
            n, start, step = (int(v) for v in state.value)
            return _RObject(_INT, start + step * np.arange(n), attributes)
        if cls == "compact_realseq":
            size, first, stride = (float(v) for v in state.value)
            return _RObject(_REAL, first + stride * np.arange(int(size)), attributes)
        if isinstance(cls, str) and cls.startswith("wrap_"):  # list(payload, metadata)
            inner = state.value[0]
            return _RObject(inner.kind, inner.value, attributes or inner.attributes)
        if cls == "deferred_string":  # the integers/doubles the strings come from
            base = state.value[0][1] if isinstance(state.value, list) else state
            return _RObject(_STR, [str(v) for v in base.value], attributes)
        raise self._fail(f"unsupported compact R vector {cls!r}")


def _strings(obj: Any) -> list[str]:
    return [] if obj is None else [str(v) for v in obj.value]


def _column(obj: _RObject, name: str, where: str) -> Any:
    """A data-frame column as numpy or a pandas categorical (for factors)."""
    levels = obj.attributes.get("levels")
    if obj.kind == _INT and levels is not None:
        codes = np.where(obj.value == _NA_INT, -1, obj.value - 1)
        return pd.Categorical.from_codes(codes, categories=_strings(levels))
    if obj.kind == _INT:
        na = obj.value == _NA_INT
        return np.where(na, np.nan, obj.value) if na.any() else obj.value.astype(np.int64)
    if obj.kind == _LGL:
        return np.where(obj.value == _NA_INT, np.nan, obj.value == 1)
    if obj.kind == _REAL:
        return obj.value
    if obj.kind == _STR:
        return np.array(obj.value, dtype=object)
    raise InputError(f"{where}: column {name!r} has R type {obj.kind}, not a vector")


def _convert(obj: Any, where: str) -> Any:
    if not isinstance(obj, _RObject):
        return obj
    if obj.kind == _VEC:
        names = _strings(obj.attributes.get("names"))
        if "data.frame" in _strings(obj.attributes.get("class")):
            cols = {n: _column(c, n, where) for n, c in zip(names, obj.value, strict=True)}
            return pd.DataFrame(cols)
        items = [_convert(v, where) for v in obj.value]
        return dict(zip(names, items, strict=True)) if names else items
    return _column(obj, "<vector>", where)


def read_rda(path: str | Path) -> dict[str, Any]:
    """The objects of an ``.rda``/``.RData`` file, by name.

    Data frames come back as :class:`pandas.DataFrame` (factors as categoricals, R's
    ``NA`` as NaN), lists as dicts (or lists without names), vectors as numpy arrays.

    Raises:
        InputError: the file is missing, not an R data file, or holds an object type
            this reader does not support (named in the message).
    """
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read R data file {where}: {exc}") from exc
    for magic, opener in ((b"\xfd7zXZ", lzma.decompress), (b"BZh", bz2.decompress)):
        if raw.startswith(magic):
            raw = opener(raw)
    if raw.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    if raw[:5] not in (b"RDX2\n", b"RDX3\n") or raw[5:7] != b"X\n":
        raise InputError(f"{where}: not an R data file in XDR format (starts {raw[:7]!r})")
    reader = _Reader(raw, where)
    reader.pos = 7
    version = reader.read_int()
    reader.read_int(), reader.read_int()  # R version that wrote it, oldest that reads it
    if version == 3:
        reader.pos += reader.read_int()  # native encoding name
    top = reader.item()
    if not isinstance(top, _RObject) or top.kind != _LIST:
        raise InputError(f"{where}: expected a list of named objects at the top level")
    return {str(name): _convert(value, where) for name, value in top.value}
