"""SmtpMailer's configuration and failure text (delivery itself: tests/functional/test_smtp.py)."""

from __future__ import annotations

import socket

import pytest

from idp.notify.mailer import MailDeliveryError, SmtpMailer

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def test_the_url_picks_tls_mode_port_and_credentials():
    smtps = SmtpMailer("smtps://mailer:s3cret%40x@smtp.example.com")
    assert (smtps.implicit_tls, smtps.host, smtps.port) == (True, "smtp.example.com", 465)
    plain = SmtpMailer("smtp://relay.internal")
    assert (plain.implicit_tls, plain.port) == (False, 25)
    assert SmtpMailer("smtp://relay.internal:2525").port == 2525


def test_the_credentials_never_appear_in_its_repr():
    mailer = SmtpMailer("smtps://mailer:hunter2-secret@smtp.example.com:465")
    assert "hunter2" not in repr(mailer) and "mailer:" not in repr(mailer)
    assert repr(mailer) == "SmtpMailer(smtps://smtp.example.com:465)"


@pytest.mark.parametrize("url", ["http://smtp.example.com", "smtp://", "smtp:///path", "mailto:x@example.com"])
def test_a_url_that_is_not_smtp_is_refused(url):
    with pytest.raises(ValueError, match="smtp://host:port"):
        SmtpMailer(url)


def test_a_server_that_is_not_there_is_a_clear_error_quickly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    mailer = SmtpMailer(f"smtp://mailer:hunter2-secret@127.0.0.1:{port}", timeout=2)
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "x"
    message.set_content("x")
    with pytest.raises(MailDeliveryError) as raised:
        mailer.send(message)
    assert str(raised.value).startswith(f"cannot connect to the SMTP server 127.0.0.1:{port}: ConnectionRefusedError")
    assert "hunter2" not in str(raised.value)
    # The failed attempt does not leak a pool slot: the mailer can still try max_connections times at once.
    assert mailer._open == 0
