"""Value types every edge of dropprice validates the same way: identifiers and whole numbers.

One definition each, used by the HTTP schemas, the operator configs, the scenarios and
the price fast path, so a SKU code or a unit count means the same thing everywhere.

- An *identifier* (SKU, market, drop, version) is 1 to 64 letters, digits and
  ``._:-``, starting with a letter or digit (:data:`IDENTIFIER_PATTERN`): safe in a
  URL path, a Redis key and a log line.
- A *zoned time* is an RFC 3339 time (ISO 8601 with seconds and a zone) between 1971
  and 2198 (:data:`ZONED_TIME_PATTERN`): ``2026-12-05T18:00:00Z``,
  ``2026-12-05T19:00:00.250+01:00``.
  The pattern is exact (no 30 February, 29 February in leap years only), so a time
  that matches it is one every reader parses.
- A *whole number* is a JSON number with no fraction: ``3`` or ``3.0`` (JSON does not
  tell them apart, and JSON Schema's ``integer`` accepts both), never ``true`` nor
  ``"3"`` (:func:`whole_number`, used with pydantic's strict ``int``).

Example:
    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(WholeNumber).validate_python(3.0)
    3
    >>> is_identifier("TEE-1"), is_identifier("-x")
    (True, False)
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

__all__ = [
    "AS_WHOLE_NUMBER",
    "IDENTIFIER_CHARS",
    "IDENTIFIER_DESCRIPTION",
    "IDENTIFIER_MAX_LENGTH",
    "IDENTIFIER_PATTERN",
    "IDENTIFIER_RE",
    "ZONED_TIME",
    "ZONED_TIME_PATTERN",
    "Identifier",
    "WholeNumber",
    "is_identifier",
    "whole_number",
    "zoned_time",
]

_FIRST = "[A-Za-z0-9]"
_REST = "[A-Za-z0-9._:-]"
IDENTIFIER_CHARS = rf"{_FIRST}{_REST}*"
"""An identifier's characters, unanchored (for building longer patterns)."""
IDENTIFIER_PATTERN = rf"^{IDENTIFIER_CHARS}$"
"""An identifier, anchored (JSON Schema ``pattern``)."""
IDENTIFIER_MAX_LENGTH = 64
IDENTIFIER_DESCRIPTION = "Letters, digits and '._:-', starting with a letter or digit."

IDENTIFIER_RE = re.compile(rf"{_FIRST}{_REST}{{0,{IDENTIFIER_MAX_LENGTH - 1}}}")
"""An identifier with its length bound, compiled (``IDENTIFIER_RE.fullmatch(text)``)."""
_IDENTIFIER_RE = re.compile(IDENTIFIER_CHARS)


def is_identifier(text: str, max_length: int = IDENTIFIER_MAX_LENGTH) -> bool:
    """Whether ``text`` is an identifier of at most ``max_length`` characters."""
    return 0 < len(text) <= max_length and _IDENTIFIER_RE.fullmatch(text) is not None


Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        pattern=IDENTIFIER_PATTERN,
        description=IDENTIFIER_DESCRIPTION,
    ),
]


_YEAR = r"19(?:7[1-9]|[89][0-9])|20[0-9][0-9]|21(?:[0-8][0-9]|9[0-8])"
_LEAP_YEAR = (
    r"19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26])|21(?:0[48]|[2468][048]|[13579][26])"
)
_MONTH_DAY = (
    r"(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8])"
)
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_ZONE = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
ZONED_TIME = rf"(?:(?:{_YEAR})-(?:{_MONTH_DAY})|(?:{_LEAP_YEAR})-02-29)T{_CLOCK}{_ZONE}"
"""A zoned time, unanchored (for building longer patterns)."""
ZONED_TIME_PATTERN = rf"^{ZONED_TIME}$"
"""A zoned time, anchored (JSON Schema ``pattern``)."""
_ZONED_TIME_RE = re.compile(ZONED_TIME)


def zoned_time(value: Any) -> Any:
    """A string that is not a zoned time (:data:`ZONED_TIME_PATTERN`) is refused; other
    values pass on to the type that parses them (``AwareDatetime``).

    Raises:
        ValueError: the string is not a zoned time (the message gives an example).
    """
    if isinstance(value, str) and _ZONED_TIME_RE.fullmatch(value) is None:
        raise ValueError(
            "must be an ISO 8601 time with seconds and a zone between 1971 and 2198, like "
            f"2026-12-05T18:00:00Z or 2026-12-05T19:00:00+01:00, got {value[:80]!r}"
        )
    return value


def whole_number(value: Any) -> Any:
    """A float with no fraction as the int it is (``3.0`` -> ``3``); anything else as is,
    for a strict ``int`` to accept or refuse (``true``, ``"3"`` and ``3.5`` are refused)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


AS_WHOLE_NUMBER = BeforeValidator(whole_number)
"""Put after the constraints: ``Annotated[int, Field(ge=1, strict=True), AS_WHOLE_NUMBER]``
(pydantic drops constraints placed after a validator from the JSON Schema it writes
for an optional or nested value)."""

WholeNumber = Annotated[int, Field(strict=True), AS_WHOLE_NUMBER]
"""A strict ``int`` that also takes a JSON number written with ``.0``. For a required
attribute, constrain it on the attribute (``count: WholeNumber = Field(ge=1)``); for an
optional or nested one, write the constraints in the ``Annotated`` (see
:data:`AS_WHOLE_NUMBER`)."""
