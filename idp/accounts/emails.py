"""Email addresses as sign-in names: validated, normalised, compared case-insensitively."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from idp.errors import InvalidInput

# RFC 5321 path limit; also bounds every later lookup and log line.
MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    """One spelling per mailbox: NFKC, IDNA-normalised domain, lower-cased whole.

    RFC 5321 lets a local part be case-sensitive, but no mail provider our users have
    treats it so, and a second account for "Alice@" beside "alice@" is an attack, not a
    feature (Keycloak lower-cases too).
    """
    value = unicodedata.normalize("NFKC", raw or "").strip()
    if not value:
        raise InvalidInput("Enter your email address.")
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidInput("That email address is too long.")
    # U+FFFD is what a decoder leaves for bytes it could not read (a CLI argument or a
    # header that was not UTF-8): no real mailbox has one, so refuse instead of guessing.
    if "\ufffd" in value or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
        raise InvalidInput("That email address contains characters that are not allowed.")
    try:
        # No DNS look-up: nothing here calls out to the network, and a slow resolver
        # would make sign-in timing depend on the domain.
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address, like name@example.com.") from None
    return checked.normalized.lower()
