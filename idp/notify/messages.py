"""Compose mail from templates/mail/<name>.txt and <name>.html.

Every message is multipart/alternative: the plain-text part first (DESIGN section 5: the
outbox contract, and what text-only clients and screen readers get), then the HTML part.
HTML templates are autoescaped, because their values include text a stranger chose: the
address someone typed into the email-change form, a browser's User-Agent, a passkey's
name. The plain-text templates are not escaped: there is nothing to interpret there.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from idp.notify.mailer import Mailer


class MailComposer:
    def __init__(self, *, templates_dir: Path, mail_from: str, service_name: str, mailer: Mailer) -> None:
        self.env = Environment(
            loader=FileSystemLoader(templates_dir / "mail"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self.mail_from = mail_from
        self.service_name = service_name
        self.mailer = mailer
        self._msgid_domain = mail_from.rsplit("@", 1)[-1].strip(">").strip() or None

    def compose(self, template: str, *, to: str, subject: str, **context: Any) -> EmailMessage:
        """The message, both parts rendered; a template missing either part is a bug
        (TemplateNotFound), not a silently text-only mail."""
        context.setdefault("service_name", self.service_name)
        context.setdefault("subject", subject)
        text = self.env.get_template(f"{template}.txt").render(**context)
        html = self.env.get_template(f"{template}.html").render(**context)
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = to
        message["Subject"] = f"{self.service_name}: {subject}"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self._msgid_domain)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to us
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def send(self, template: str, *, to: str, subject: str, **context: Any) -> None:
        self.mailer.send(self.compose(template, to=to, subject=subject, **context))
