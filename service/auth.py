"""API keys: hashed at rest, compared in constant time, mapped to a role.

A key is a random token held by a POS integration or an operator; the service
keeps only its SHA-256 digest (a fast hash is right for high-entropy random
tokens: there is nothing to brute-force, unlike a password). A presented key is
hashed and compared with *every* configured digest with
:func:`hmac.compare_digest`, so the time taken does not depend on which digest
matched or how many leading characters agreed.

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
        self._entries = [(d.encode(), Role(r)) for d, r in digests.items()]
        self.disabled = disabled
        self._dev = Caller(Role.admin, "dev")

    def caller(self, presented: str | None) -> Caller | None:
        """The caller a presented key identifies, or ``None`` (missing or unknown key)."""
        if self.disabled:
            return self._dev
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).hexdigest().encode()
        found: Role | None = None
        for stored, role in self._entries:
            # No early exit: every digest is compared.
            if hmac.compare_digest(digest, stored):
                found = role
        return Caller(found, digest[:8].decode()) if found is not None else None

    def role_for(self, presented: str | None) -> Role | None:
        """The role a presented key grants, or ``None``."""
        caller = self.caller(presented)
        return caller.role if caller is not None else None
