"""The one adapter around argon2-cffi: argon2id with parameters from settings.

Parameters (RFC 9106 second recommended option by default) are fixed here and nowhere
else; a stored hash made with other parameters is upgraded at the next correct sign-in.
"""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # A real hash of a random string: unknown accounts are verified against it so that
        # "no such account" costs the same time as "wrong password".
        self._dummy = self._argon2.hash("dummy password for timing equalisation")

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True only for a match; an unusable or malformed hash still costs one verification."""
        try:
            return self._argon2.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        self.verify(None, password)

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True
