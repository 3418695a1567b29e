"""The mail queue: nothing leaves before ``flush``; after a response, failures are logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from idp.notify.addresses import mask_address
from idp.notify.queue import MailQueue

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


class Flaky:
    """A composer whose mail server refuses one recipient."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, str]] = []

    def send(self, template: str, *, to: str, subject: str, **context: Any) -> None:
        if to == self.refuse:
            raise RuntimeError("mail not sent via smtp.example:587: SMTPRecipientsRefused: 550 no such mailbox")
        self.sent.append((template, to))


def test_nothing_leaves_before_flush_and_flush_keeps_the_order():
    composer = Flaky(refuse="")
    queue = MailQueue(composer)
    queue.send("a", to="one@example.com", subject="s")
    queue.send("b", to="two@example.com", subject="s")
    assert composer.sent == []
    assert queue.flush() == 2
    assert composer.sent == [("a", "one@example.com"), ("b", "two@example.com")]


def test_flush_logged_logs_a_failure_without_the_link_and_sends_the_rest(caplog):
    composer = Flaky(refuse="new@example.org")
    queue = MailQueue(composer)
    queue.send("email_change_confirm", to="new@example.org", subject="s", link="https://idp.example/?token=SECRET")
    queue.send("email_change_requested", to="nina@example.com", subject="s")
    with caplog.at_level(logging.ERROR):
        assert queue.flush_logged(logging.getLogger("idp.test"), "email change request") == 1
    assert composer.sent == [("email_change_requested", "nina@example.com")]
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith("email change request: mail 'email_change_confirm' to n***@example.org not sent")
    assert "550 no such mailbox" in message
    assert "SECRET" not in message and "new@example.org" not in message
    assert queue.pending == []


def test_mask_address():
    assert mask_address("nina@example.com") == "n***@example.com"
    assert mask_address("x@example.com") == "x***@example.com"
    assert mask_address("not an address") == "***"
    assert mask_address("@example.com") == "***"
