"""Mailers: the file outbox (embedded mode) and SMTP (``IDP_SMTP_URL``)."""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from idp.crypto.tokens import new_secret
from idp.db import utcnow

log = logging.getLogger(__name__)


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class MailDeliveryError(RuntimeError):
    """A message was not handed to the mail server. The text names the server (host and
    port) and what went wrong, never the credentials: it is logged and shown to operators."""


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


def _dropped(error: Exception) -> bool:
    """The connection died under us (typically the server closed it while it sat idle):
    worth one retry on a fresh connection. A refusal of the message itself is not."""
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code == 421  # RFC 5321 4.2.2: "service not available, closing channel"
    return isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError))


class SmtpMailer:
    """Delivers over SMTP, reusing connections across messages.

    URL (``IDP_SMTP_URL``): ``smtps://[user:pass@]host[:465]`` is TLS from the first
    byte; ``smtp://[user:pass@]host[:25]`` upgrades with STARTTLS when the server offers
    it, and *requires* it when the URL carries credentials, so a man in the middle who
    strips the STARTTLS offer does not get the password in clear text.

    Reuse: opening a connection costs a TCP and TLS handshake, EHLO and AUTH, several
    round trips per message; a forced reset of 100,000 accounts spent most of its time in
    mail (benchmarks/RESULTS.md). So a connection goes back to a small pool after each
    message and is closed (QUIT) once it has been idle ``idle_seconds``, well under the
    five minutes after which RFC 5321 4.5.3.2.7 lets a server drop it. A connection found
    dropped when reused is replaced and the message sent again, once.

    Thread-safe (a worker's threads send after their responses): each connection
    is used by one thread at a time; at most ``max_connections`` are open per process.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        idle_seconds: float = 30.0,
        max_connections: int = 4,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("IDP_SMTP_URL must look like smtp://host:port or smtps://host:port")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.max_connections = max_connections
        # Built once: loading the system CA bundle costs tens of milliseconds of CPU, which
        # the old one-context-per-message mailer paid on every mail of a forced reset.
        self._tls = tls_context or ssl.create_default_context()
        self._local_hostname: str | None = None  # EHLO name: socket.getfqdn() once, not per connection
        self._lock = threading.Condition()
        self._idle: list[tuple[smtplib.SMTP, float]] = []  # (connection, idle since), newest last
        self._open = 0
        self._reaper: threading.Thread | None = None
        self.connections_opened = 0  # for operators and tests: how often a handshake was paid

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never the credentials
        return f"SmtpMailer({'smtps' if self.implicit_tls else 'smtp'}://{self.where})"

    # ------------------------------------------------------------------ sending
    def send(self, message: EmailMessage) -> None:
        client, reused = self._checkout()
        try:
            client.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            self._discard(client)
            if not (reused and _dropped(error)):
                raise MailDeliveryError(f"mail not sent via {self.where}: {_describe(error)}") from error
            log.info("SMTP connection to %s was closed by the server; reconnecting once", self.where)
            self._send_on_a_new_connection(message)
            return
        except BaseException:
            self._discard(client)
            raise
        self._checkin(client)

    def _send_on_a_new_connection(self, message: EmailMessage) -> None:
        # The slot of the connection just discarded: no waiting for the pool here.
        with self._lock:
            self._open += 1
        client = self._connect_reserved()
        try:
            client.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            self._discard(client)
            raise MailDeliveryError(f"mail not sent via {self.where}: {_describe(error)}") from error
        except BaseException:
            self._discard(client)
            raise
        self._checkin(client)

    def close(self) -> None:
        """QUIT every idle connection now (the end of a CLI run; tests)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._lock.notify_all()
        for client, _ in idle:
            _quit(client)

    # ------------------------------------------------------------------ the pool
    def _checkout(self) -> tuple[smtplib.SMTP, bool]:
        """An idle connection (reused=True), else a new one once fewer than
        ``max_connections`` are open; waits up to ``timeout`` for one to come back."""
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while not self._idle and self._open >= self.max_connections:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MailDeliveryError(f"mail not sent via {self.where}: every connection stayed busy "
                                            f"for {self.timeout:g} s")
                self._lock.wait(remaining)
            if self._idle:
                client, _ = self._idle.pop()  # the most recently used: the least likely to be dropped
                return client, True
            self._open += 1  # the slot is taken now; the handshake happens outside the lock
        return self._connect_reserved(), False

    def _connect_reserved(self) -> smtplib.SMTP:
        """Connect for a slot already counted in ``_open``; the slot is given back on failure."""
        try:
            client = self._connect()
        except BaseException:
            self._release()
            raise
        with self._lock:
            self.connections_opened += 1
        return client

    def _checkin(self, client: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((client, time.monotonic()))
            self._lock.notify()
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="smtp-idle-reaper", daemon=True)
                self._reaper.start()

    def _discard(self, client: smtplib.SMTP) -> None:
        self._release()
        _quit(client)

    def _release(self) -> None:
        with self._lock:
            self._open -= 1
            self._lock.notify()

    def _reap(self) -> None:
        """Close connections idle too long; the thread ends when none is left idle."""
        while True:
            with self._lock:
                now = time.monotonic()
                expired = [c for c, since in self._idle if now - since >= self.idle_seconds]
                self._idle = [(c, since) for c, since in self._idle if now - since < self.idle_seconds]
                self._open -= len(expired)
                if expired:
                    self._lock.notify_all()
                if not self._idle:
                    self._reaper = None
                    wait = None
                else:
                    oldest = min(since for _, since in self._idle)
                    wait = max(0.05, self.idle_seconds - (now - oldest))
            for client in expired:
                _quit(client)
            if wait is None:
                return
            time.sleep(wait)

    # ------------------------------------------------------------ a connection
    def _connect(self) -> smtplib.SMTP:
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        try:
            if self.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self._local_hostname,
                                                        timeout=self.timeout, context=self._tls)
            else:
                client = smtplib.SMTP(self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as error:
            raise MailDeliveryError(f"cannot connect to the SMTP server {self.where}: {_describe(error)}") from error
        try:
            client.ehlo()
            if not self.implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=self._tls)
                    client.ehlo()
                elif self._username:
                    raise MailDeliveryError(f"the SMTP server {self.where} does not offer STARTTLS; refusing to "
                                            "send the credentials of IDP_SMTP_URL in clear text (use smtps:// "
                                            "or enable STARTTLS on the server)")
            if self._username:
                client.login(self._username, self._password or "")
        except MailDeliveryError:
            _quit(client)
            raise
        except smtplib.SMTPAuthenticationError as error:
            _quit(client)
            raise MailDeliveryError(f"the SMTP server {self.where} refused the user name and password of "
                                    f"IDP_SMTP_URL ({error.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as error:
            _quit(client)
            raise MailDeliveryError(f"SMTP session with {self.where} failed: {_describe(error)}") from error
        return client


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__}: {error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # The server's answers, not the addresses: this text is logged.
        replies = sorted({f"{code} {_text(reply)}" for code, reply in error.recipients.values()})
        return f"SMTPRecipientsRefused: {'; '.join(replies)}"
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _quit(client: smtplib.SMTP) -> None:
    """Polite QUIT if the connection still answers, else just close the socket."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
