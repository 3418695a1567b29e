"""Password rules after NIST SP 800-63B-4: length, not composition; a blocklist."""

from __future__ import annotations

import pytest

from idp.accounts.passwords import (
    MAX_LENGTH,
    MIN_LENGTH_SINGLE_FACTOR,
    MIN_LENGTH_WITH_MFA,
    NoBreachedPasswords,
    PasswordPolicy,
    PasswordRejected,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


class OneBreachedPassword:
    def __init__(self, password: str) -> None:
        self.password = password

    def is_breached(self, password: str) -> bool:
        return password == self.password


def policy(min_length: int = MIN_LENGTH_SINGLE_FACTOR, breached=None) -> PasswordPolicy:  # type: ignore[no-untyped-def]
    return PasswordPolicy(min_length=min_length, service_name="idp", breached=breached or NoBreachedPasswords())


def test_length_limits_follow_sp_800_63b_4():
    assert MIN_LENGTH_SINGLE_FACTOR == 15
    assert MIN_LENGTH_WITH_MFA == 8
    assert MAX_LENGTH >= 64


def test_password_only_needs_fifteen_characters():
    with pytest.raises(PasswordRejected, match="at least 15"):
        policy().check("abcdefghijklmn")
    assert policy().check("abcdefghijklmno") == "abcdefghijklmno"


def test_with_mfa_eight_characters_are_enough():
    assert policy(MIN_LENGTH_WITH_MFA).check("abcdefgh") == "abcdefgh"
    with pytest.raises(PasswordRejected):
        policy(MIN_LENGTH_WITH_MFA).check("abcdefg")


def test_no_composition_rules():
    # All lower-case letters, no digits or symbols: fine if it is long.
    assert policy().check("lowercase only and long")


def test_sixty_four_characters_and_more_are_accepted():
    assert policy().check("x" * 64)
    assert policy().check("y" * MAX_LENGTH)
    with pytest.raises(PasswordRejected, match=f"at most {MAX_LENGTH}"):
        policy().check("z" * (MAX_LENGTH + 1))


def test_any_unicode_is_accepted_and_nfkc_normalised():
    # Fullwidth letters typed on another keyboard are the same password.
    assert policy().check("ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ") == "correct horse battery"
    assert policy().check("пароль из многих слов") == "пароль из многих слов"
    assert policy().check("🐎🔋📎 staple staple")


def test_control_characters_are_refused():
    with pytest.raises(PasswordRejected, match="control characters"):
        policy().check("correct horse\x00battery")
    with pytest.raises(PasswordRejected, match="control characters"):
        policy().check("correct horse\x1bbattery")


def test_context_words_are_refused():
    with pytest.raises(PasswordRejected, match="too easy to guess"):
        policy(MIN_LENGTH_WITH_MFA).check("alice.smith@example.com", email="alice.smith@example.com")
    with pytest.raises(PasswordRejected, match="too easy to guess"):
        policy(MIN_LENGTH_WITH_MFA).check("Alice.Smith", email="alice.smith@example.com")
    with pytest.raises(PasswordRejected, match="too easy to guess"):
        PasswordPolicy(min_length=3, service_name="Wallet", breached=NoBreachedPasswords()).check("wallet")


def test_breached_passwords_are_refused_through_the_seam():
    breached = OneBreachedPassword("correct horse battery staple")
    with pytest.raises(PasswordRejected, match="data breach"):
        policy(breached=breached).check("correct horse battery staple")
    assert policy(breached=breached).check("correct horse battery stapler")


def test_empty_password_is_refused():
    with pytest.raises(PasswordRejected, match="Enter a password"):
        policy().check("")
