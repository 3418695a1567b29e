"""Composing mail: both parts from templates, autoescaped HTML, strict about missing values."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from jinja2 import TemplateNotFound, UndefinedError

from idp.notify.messages import MailComposer
from idp.registry import TEMPLATES_DIR

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


class Kept:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


def composer(templates_dir: Path = TEMPLATES_DIR) -> MailComposer:
    return MailComposer(templates_dir=templates_dir, mail_from="idp <no-reply@idp.example>", service_name="idp",
                        mailer=Kept())


def test_every_mail_template_has_a_text_and_an_html_part():
    folder = TEMPLATES_DIR / "mail"
    texts = {p.stem for p in folder.glob("*.txt")}
    htmls = {p.stem for p in folder.glob("*.html") if not p.name.startswith("_")}
    assert texts and texts == htmls


def test_a_message_is_multipart_alternative_text_first(tmp_path):
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "hello.txt").write_text("Hi {{ name }}, {{ link }}\n")
    (tmp_path / "mail" / "hello.html").write_text('<p>Hi {{ name }}, <a href="{{ link }}">go</a></p>\n')
    message = composer(tmp_path).compose("hello", to="nina@example.com", subject="Hello", name="<Nina & co>",
                                         link="https://idp.example/x?a=1&b=2")
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert text == "Hi <Nina & co>, https://idp.example/x?a=1&b=2\n"  # plain text is not escaped
    assert html == '<p>Hi &lt;Nina &amp; co&gt;, <a href="https://idp.example/x?a=1&amp;b=2">go</a></p>\n'
    assert message["Subject"] == "idp: Hello" and message["To"] == "nina@example.com"
    assert message["Message-ID"].endswith("@idp.example>") and message["Auto-Submitted"] == "auto-generated"


def test_a_template_without_its_html_part_is_an_error_not_a_text_only_mail(tmp_path):
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "lonely.txt").write_text("text only\n")
    with pytest.raises(TemplateNotFound):
        composer(tmp_path).send("lonely", to="nina@example.com", subject="x")


def test_a_missing_value_is_an_error_not_an_empty_link():
    with pytest.raises(UndefinedError):
        composer().send("password_reset", to="nina@example.com", subject="x", minutes=20, ip="192.0.2.1",
                        reset_url="https://idp.example/reset")  # no link


def test_header_injection_through_the_recipient_is_refused():
    with pytest.raises(ValueError):
        composer().compose("signup_existing", to="nina@example.com\r\nBcc: attacker@evil.example", subject="x",
                           signin_url="https://idp.example/login")
