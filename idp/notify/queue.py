"""Mail composed now and sent later: after the transaction that made its links valid.

A reset link mailed before its token is committed could arrive dead (the commit fails)
or, in a batch that is rolled back and re-run, arrive twice. So services that mail a
link write to a ``MailQueue`` and the caller sends it once the database has committed;
the web view sends it after the response has gone (``call_on_close``), so the answer's
timing does not tell whether a mail was sent (DESIGN section 4: no enumeration by timing).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from idp.notify.addresses import mask_address


class _InFlight:
    """How many after-response flushes of this process have not finished yet. Nothing in
    the product waits on it; tests read the outbox once it is zero, because a live
    server answers before the mail leaves (`settled`)."""

    def __init__(self) -> None:
        self._count = 0
        self._cond = threading.Condition()

    def add(self) -> None:
        with self._cond:
            self._count += 1

    def done(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    def settled(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._count == 0, timeout)


IN_FLIGHT = _InFlight()


class Composer(Protocol):
    def send(self, template: str, *, to: str, subject: str, **context: Any) -> None: ...


@dataclass(frozen=True)
class QueuedMail:
    template: str
    to: str
    subject: str
    context: dict[str, Any] = field(repr=False)  # holds the link: never logged


class MailQueue:
    """Same ``send`` as MailComposer; nothing leaves until ``flush``."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer
        self.pending: list[QueuedMail] = []

    def send(self, template: str, *, to: str, subject: str, **context: Any) -> None:
        self.pending.append(QueuedMail(template, to, subject, context))

    def flush(self) -> int:
        """Send everything queued, oldest first; returns how many were sent."""
        sent = 0
        while self.pending:
            mail = self.pending.pop(0)
            self.composer.send(mail.template, to=mail.to, subject=mail.subject, **mail.context)
            sent += 1
        return sent

    def flush_logged(self, logger: logging.Logger, what: str) -> int:
        """``flush`` for after a response has gone: a message that cannot be sent is
        logged (template, masked recipient, the mailer's reason) and the others are still
        tried; nothing is raised, since nobody is left to show an error to. The link in
        the message is never logged."""
        sent = 0
        while self.pending:
            mail = self.pending.pop(0)
            try:
                self.composer.send(mail.template, to=mail.to, subject=mail.subject, **mail.context)
            except Exception as error:  # noqa: BLE001 - logged; the person can ask again
                logger.error("%s: mail %r to %s not sent: %s", what, mail.template, mask_address(mail.to), error)
            else:
                sent += 1
        return sent

    def discard(self) -> None:
        self.pending.clear()
