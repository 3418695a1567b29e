"""Email addresses as sign-in names: one spelling per mailbox."""

from __future__ import annotations

import pytest

from idp.accounts.emails import normalize_email
from idp.errors import InvalidInput

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM  ", "alice@example.com"),
        # Fullwidth forms (an East Asian keyboard) are NFKC-equivalent to ASCII.
        ("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),
        # Ligature U+FB01 "ﬁ" is NFKC "fi".
        ("\ufb01@example.com", "fi@example.com"),
        # Internationalised domains keep one (lower-case, NFC) spelling.
        ("bob@BÜCHER.example", "bob@bücher.example"),
    ],
)
def test_equivalent_spellings_map_to_one_address(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "not-an-email",
        "a@",
        "@example.com",
        "a" * 10_000 + "@example.com",
        "a\x00@example.com",
        "a\x1b@example.com",
        "a\u202e@example.com",  # right-to-left override: displays as a different address
        "a\u200b@example.com",  # zero-width space
        "a\ufffd@example.com",
    ],
)
def test_unusable_addresses_are_refused_with_a_message(raw):
    with pytest.raises(InvalidInput) as caught:
        normalize_email(raw)
    assert caught.value.public_message
    assert caught.value.status == 400
