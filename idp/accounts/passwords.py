"""Password rules after NIST SP 800-63B-4 section 3.1.1.2.

Length over composition, any Unicode (NFKC-normalised so that the same password typed on
two keyboards is the same password), no composition rules, no expiry, and a blocklist:
the breached-password corpus (a separate service behind ``BreachedPasswords``) plus
context words (the service name, the user's email and its local part).
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from idp.errors import InvalidInput

# SP 800-63B-4: at least 15 when the password is the only factor, at least 8 with MFA.
MIN_LENGTH_SINGLE_FACTOR = 15
MIN_LENGTH_WITH_MFA = 8
# SP 800-63B-4 asks that at least 64 be accepted; the cap bounds hashing work per request.
MAX_LENGTH = 256


class PasswordRejected(InvalidInput):
    """A password that breaks a rule; the message says why and what to do."""


class BreachedPasswords(Protocol):
    """The seam for the breached-password corpus (see idp/breached/)."""

    def is_breached(self, password: str) -> bool: ...


class NoBreachedPasswords:
    """Null twin: used where no corpus is configured (and in unit tests of the rules)."""

    def is_breached(self, password: str) -> bool:
        return False


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


class PasswordPolicy:
    def __init__(self, *, min_length: int, service_name: str, breached: BreachedPasswords) -> None:
        self.min_length = min_length
        self.service_name = service_name
        self.breached = breached

    def check(self, password: str, *, email: str | None = None) -> str:
        """Return the normalised password, or raise PasswordRejected saying why."""
        value = normalize_password(password or "")
        if not value:
            raise PasswordRejected("Enter a password.")
        if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
            raise PasswordRejected("Passwords cannot contain control characters.")
        length = len(value)
        if length < self.min_length:
            raise PasswordRejected(
                f"Use at least {self.min_length} characters. A few unrelated words make a long"
                " password that is easy to remember."
            )
        if length > MAX_LENGTH:
            raise PasswordRejected(f"Use at most {MAX_LENGTH} characters.")
        if self._is_context_word(value, email):
            raise PasswordRejected(
                "That password is too easy to guess: it is your email address or this"
                " service's name. Choose something else."
            )
        if self.breached.is_breached(value):
            raise PasswordRejected(
                "That password has appeared in a data breach elsewhere, so attackers try it"
                " first. Choose a different one you have not used before."
            )
        return value

    def _is_context_word(self, value: str, email: str | None) -> bool:
        folded = value.casefold()
        words = {self.service_name.casefold()}
        if email:
            words.add(email.casefold())
            words.add(email.split("@", 1)[0].casefold())
        return folded in {w for w in words if w}
