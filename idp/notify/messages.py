"""Compose mail from templates/mail/<name>.txt (and .html when present)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

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

    def send(self, template: str, *, to: str, subject: str, **context: Any) -> None:
        context.setdefault("service_name", self.service_name)
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = to
        message["Subject"] = f"{self.service_name}: {subject}"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.mail_from.rsplit("@", 1)[-1].strip(">") or None)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.env.get_template(f"{template}.txt").render(**context))
        try:
            html = self.env.get_template(f"{template}.html").render(**context)
        except TemplateNotFound:
            html = None
        if html is not None:
            message.add_alternative(html, subtype="html")
        self.mailer.send(message)
