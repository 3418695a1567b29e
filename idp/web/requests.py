"""Per-request plumbing shared by the views: database session, services, who is asking."""

from __future__ import annotations

import ipaddress
import unicodedata

from flask import Response, current_app, g, request
from sqlalchemy.orm import Session

from idp.context import RequestContext
from idp.errors import InvalidInput
from idp.notify.queue import IN_FLIGHT, MailQueue
from idp.registry import Registry, Services
from idp.settings import Settings


def registry() -> Registry:
    return current_app.extensions["idp"]


def settings() -> Settings:
    return registry().settings


def db() -> Session:
    if "db" not in g:
        g.db = registry().sessionmaker()
    return g.db


def services() -> Services:
    if "services" not in g:
        g.services = registry().services(db(), mail=request_mail())
    return g.services


def request_mail() -> MailQueue:
    """This request's outgoing mail: sent after the response (``send_mail_after``)."""
    if "mail_queue" not in g:
        g.mail_queue = MailQueue(registry().mail)
    return g.mail_queue


def send_mail_after(response: Response) -> Response:
    """after_request: what the request queued leaves once the answer has gone, failures
    logged (masked address, never the link). A request that failed (5xx) sends nothing:
    its transaction was not committed, so its links would be dead."""
    queue: MailQueue | None = g.get("mail_queue")
    if queue is None or not queue.pending:
        return response
    if response.status_code >= 500:
        queue.discard()
        return response
    logger, what = current_app.logger, request.endpoint or request.path

    def send() -> None:
        try:
            queue.flush_logged(logger, what)
        finally:
            IN_FLIGHT.done()

    IN_FLIGHT.add()  # before the answer leaves: see IN_FLIGHT
    response.call_on_close(send)
    return response


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    g.pop("services", None)
    if session is not None:
        session.close()


def client_ip() -> str | None:
    """The client address: X-Forwarded-For is believed only from trusted proxies.

    Read right to left: each hop appends the peer it saw, so the right-most entry not
    belonging to a trusted proxy is the first address nobody we trust could forge.
    """
    peer = request.remote_addr
    trusted = settings().trusted_proxies
    if not trusted or peer is None or not _in(peer, trusted):
        return peer
    # Every X-Forwarded-For line, in order (RFC 9110 5.3: repeated fields form one list):
    # with .get() a client's own forged line would shadow the one our proxy added after it.
    chain = ",".join(request.headers.getlist("X-Forwarded-For"))
    hops = [h.strip() for h in chain.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))  # canonical form: one counter per address
        except ValueError:
            return peer  # a malformed chain: fall back to what we saw ourselves
        if not _in(address, trusted):
            return address
    return str(ipaddress.ip_address(hops[0])) if hops else peer


def _in(address: str, networks: tuple) -> bool:  # type: ignore[type-arg]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def request_context() -> RequestContext:
    if "request_context" not in g:
        ua = request.headers.get("User-Agent", "")
        g.request_context = RequestContext(ip=client_ip(), user_agent=ua[:512] or None)
    return g.request_context


def form_text(name: str, *, max_length: int = 1024) -> str:
    """A form field as text: bounded, valid UTF-8, no NUL. Missing means empty."""
    values = request.form.getlist(name)
    if len(values) > 1:
        raise InvalidInput(f"The field {name!r} was sent more than once.")
    value = values[0] if values else ""
    if len(value) > max_length:
        raise InvalidInput("A field in this form is too long.")
    # Multipart fields that are not UTF-8 arrive with U+FFFD (url-encoded ones are refused
    # earlier, by security._require_utf8): a person never types it, so the form was not
    # UTF-8 and guessing what was meant could store the wrong address.
    if "\ufffd" in value or "\x00" in value:
        raise InvalidInput("This form contained characters that could not be read. Check it and try again.")
    return value


def display_hint(value: str | None, *, max_length: int = 254) -> str:
    """An optional value echoed into a page (``login_hint``): dropped, not refused, when it
    holds control or invisible formatting characters (terminal escapes, U+202E), since it
    comes from a link someone else wrote and the page works without it."""
    if not value or len(value) > max_length:
        return ""
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") or ch == "\ufffd" for ch in value):
        return ""
    return value
