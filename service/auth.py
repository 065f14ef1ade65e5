"""API keys: hashed at rest, compared in constant time, mapped to a role.

A key is a random token held by a POS integration or an operator; the service
keeps only its SHA-256 digest (a fast hash is right for high-entropy random
tokens: there is nothing to brute-force, unlike a password). A presented key is
hashed and its digest looked up. Nothing is ever compared against a secret key
itself: the only comparison is of SHA-256 digests, and timing can at most reveal
how many leading bytes the digest of what the caller sent shares with a stored
digest, which says nothing about any valid key (finding a key for a given digest
prefix is a preimage search). The matched digest is then confirmed with
:func:`hmac.compare_digest`. The look-up costs the same with five keys or five
thousand (one per store), where comparing against every digest would not.

Example:
    >>> key = new_api_key()
    >>> keys = ApiKeys({hash_api_key(key): Role.pos})
    >>> keys.role_for(key)
    <Role.pos: 'pos'>
    >>> keys.role_for("wrong") is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import NamedTuple

from service.settings import Role

__all__ = ["ApiKeys", "Caller", "hash_api_key", "new_api_key"]


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key (what ``DROPPRICE_API_KEYS`` holds)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return "dp_" + secrets.token_urlsafe(32)


class Caller(NamedTuple):
    """Who is calling: their role and a short, non-secret key id for logs."""

    role: Role
    key_id: str


class ApiKeys:
    """Configured key digests and the role each grants.

    Args:
        digests: ``{sha256 hex: role}``.
        disabled: development mode: every request is an ``admin`` caller.
    """

    def __init__(self, digests: Mapping[str, Role], *, disabled: bool = False) -> None:
        self._roles = {d.encode(): (d.encode(), Role(r)) for d, r in digests.items()}
        self.disabled = disabled
        self._dev = Caller(Role.admin, "dev")

    def caller(self, presented: str | None) -> Caller | None:
        """The caller a presented key identifies, or ``None`` (missing or unknown key)."""
        if self.disabled:
            return self._dev
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).hexdigest().encode()
        entry = self._roles.get(digest)
        # The stored digest is still confirmed in constant time (belt and braces).
        if entry is None or not hmac.compare_digest(entry[0], digest):
            return None
        return Caller(entry[1], digest[:8].decode())

    def role_for(self, presented: str | None) -> Role | None:
        """The role a presented key grants, or ``None``."""
        caller = self.caller(presented)
        return caller.role if caller is not None else None
