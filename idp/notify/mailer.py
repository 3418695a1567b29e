"""Mailers: the file outbox (embedded mode) and SMTP (``IDP_SMTP_URL``)."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from idp.crypto.tokens import new_secret
from idp.db import utcnow


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class FileOutboxMailer:
    """One RFC 5322 ``.eml`` file per message (DESIGN section 5), written atomically."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def send(self, message: EmailMessage) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        name = f"{utcnow().strftime('%Y%m%dT%H%M%S.%fZ')}-{new_secret()[:8]}.eml"
        # Write then rename: a reader never sees half a message.
        fd, tmp = tempfile.mkstemp(dir=self.outbox, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(bytes(message))
        os.replace(tmp, self.outbox / name)


class SmtpMailer:
    """smtp://[user:pass@]host[:port] (STARTTLS when offered) or smtps:// (implicit TLS)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("IDP_SMTP_URL must look like smtp://host:port or smtps://host:port")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if not self.implicit_tls:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)
