"""OpenID Connect Back-Channel Logout 1.0: telling relying parties that a session ended.

Every SSO session end (sign-out, RP-initiated logout, "end this session", password change
or reset, an operator's force-reset, account disable) reaches ``sessions_ended`` through
``Services._revoke_tokens_of_sessions``. Each client that registered a
``backchannel_logout_uri`` and received a code, refresh token or access token from one of
those sessions is sent a logout token (§2.4) by POST to that URI (§2.5).

In what order, and why:

1. Inside the ending transaction: the recipients are found, their logout tokens signed
   and an audit record written. Nothing is sent yet: the tokens wait on the database
   session.
2. When that transaction commits (SQLAlchemy ``after_commit``) they go to the
   process-wide ``Dispatcher``. A rollback, or a session closed without a commit, drops
   them: a relying party must never hear of a logout that did not happen.
3. The dispatcher's worker threads POST them, so neither the person's sign-out nor an
   operator's force-reset waits on a relying party. A POST is bounded by the timeout,
   never follows a redirect (§2.5 names one URI; a redirect could point anywhere), and
   uses no proxy or netrc from the environment: only operator-registered URIs are ever
   called. A URI that timed out or refused is skipped for ``DOWN_SECONDS`` and the queue
   is bounded, so a dead relying party cannot make a million-account force-reset crawl
   or grow memory. Every outcome is logged (never the token) and counted
   (``Dispatcher.counts()``; ``on_outcome`` observers can feed /metrics).
4. At interpreter exit (the CLI) pending deliveries get up to the timeout to finish.

Not done: retries (§2.8 allows them; an RP that was down when the session ended is not
told later) and the optional ``sid``-less per-user logout (we always know the session).
"""

from __future__ import annotations

import atexit
import collections
import http.client
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import event, select, union
from sqlalchemy.orm import Session

from idp.audit import AuditService
from idp.db import random_id
from idp.keys import KeyService, jose
from idp.keys.service import SigningKeyError
from idp.models import AuthorizationCode, IssuedAccessToken, OAuthClient, RefreshToken, SsoSession

log = logging.getLogger("idp.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYP = "logout+jwt"  # §2.4: explicit typing (RFC 8725 §3.11)
# §2.4 recommends a short lifetime: long enough for a delivery and the RP's clock skew.
LOGOUT_TOKEN_SECONDS = 120
# Workers POSTing at once, across every relying party of this process.
MAX_PARALLEL = 8
# Deliveries waiting beyond this are dropped (logged and counted), not held in memory.
MAX_PENDING = 10_000
# After a timeout or a refused connection, further logouts to that URI are skipped this long.
DOWN_SECONDS = 60.0
# How many session ids go into one IN (...) list.
_CHUNK = 500
_PENDING_KEY = "idp.backchannel.pending"
_HOOKED_KEY = "idp.backchannel.hooked"
_USER_AGENT = "idp-backchannel-logout/1"
# A delivery in flight when the process starts to exit ends within its own timeout; this
# much more lets its worker record the outcome rather than be cut off just before.
_EXIT_GRACE_SECONDS = 0.25

# Outcomes, as logged and counted.
DELIVERED = "delivered"          # 2xx (§2.8 asks for 200; some frameworks answer 204)
REJECTED = "rejected"            # any other status, a redirect included (not followed)
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"      # refused, DNS, TLS, connection dropped
SKIPPED = "skipped_unreachable"  # the URI failed less than DOWN_SECONDS ago
DROPPED = "dropped_queue_full"
ABANDONED = "abandoned_at_exit"
NOT_SIGNED = "not_signed"        # no active signing key: nothing could be sent


@dataclass(frozen=True)
class Delivery:
    client_id: str
    uri: str
    session_id: str
    jti: str
    timeout: float
    logout_token: str = field(repr=False)


class BackchannelLogout:
    """The per-transaction part: who must be told, with which signed token."""

    def __init__(
        self,
        *,
        db: Session,
        keys: KeyService,
        audit: AuditService,
        issuer: str,
        timeout_seconds: float,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.audit = audit
        self.issuer = issuer
        self.timeout = timeout_seconds
        self._dispatcher = dispatcher

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher or default_dispatcher()

    def sessions_ended(self, session_ids: Sequence[str]) -> None:
        """Sign logout tokens for every interested client; they are sent after the commit."""
        recipients = self.recipients(session_ids)
        if not recipients:
            return
        pending = self._pending()
        for client_id, uri, session_id, user_id in recipients:
            if (client_id, session_id) in pending:
                continue
            try:
                token, jti = self.logout_token(client_id=client_id, session_id=session_id, user_id=user_id)
            except SigningKeyError:
                # The session has ended whatever happens here: refusing the sign-out
                # because a relying party cannot be told would be the worse failure.
                log.error("backchannel logout %s: client=%s sid=%s", NOT_SIGNED, client_id, session_id)
                self.dispatcher.count(NOT_SIGNED)
                continue
            pending[client_id, session_id] = Delivery(client_id=client_id, uri=uri, session_id=session_id, jti=jti,
                                                      timeout=self.timeout, logout_token=token)
            self.audit.record("backchannel_logout.queued", user_id=user_id, session_id=session_id,
                              client_id=client_id, jti=jti)

    def recipients(self, session_ids: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """(client id, logout URI, session id, user id) for each enabled client with a
        logout URI that a code or token of one of these sessions was issued to. Revoked
        ones count too: the session end has just revoked them."""
        found: list[tuple[str, str, str, str]] = []
        ids = list(dict.fromkeys(session_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            rows = self.db.execute(select(SsoSession.id, SsoSession.user_id).where(SsoSession.id.in_(chunk)))
            owners = {session_id: user_id for session_id, user_id in rows}
            if not owners:
                continue
            codes = AuthorizationCode
            issued = union(
                # Codes are kept after use and oauth_codes.session_id has no index: found
                # through the owner's (indexed) user_id, so a sign-out never scans them all.
                select(codes.client_id.label("client_id"), codes.session_id.label("session_id"))
                .where(codes.user_id.in_(set(owners.values())), codes.session_id.in_(chunk)),
                *(select(table.client_id, table.session_id).where(table.session_id.in_(chunk))
                  for table in (RefreshToken, IssuedAccessToken)),
            ).subquery()
            stmt = (
                select(OAuthClient.id, OAuthClient.backchannel_logout_uri, issued.c.session_id)
                .join(issued, issued.c.client_id == OAuthClient.id)
                .where(OAuthClient.backchannel_logout_uri.is_not(None), OAuthClient.disabled_at.is_(None))
                .order_by(issued.c.session_id, OAuthClient.id)
            )
            found.extend((c, u, s, owners[s]) for c, u, s in self.db.execute(stmt) if s in owners)
        return found

    def logout_token(self, *, client_id: str, session_id: str, user_id: str) -> tuple[str, str]:
        """§2.4: iss, aud, iat, exp, jti, events, sub and sid; never a nonce (§2.4: a
        logout token with a nonce must be rejected, so it cannot pass as an ID token)."""
        now = int(time.time())
        jti = random_id()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_SECONDS,
            "jti": jti,
            "events": {EVENT: {}},
            "sub": user_id,
            "sid": session_id,
        }
        key = self.keys.ring().signer(jose.DEFAULT_ALGORITHM)
        return jose.sign(claims, key=key.private, alg=key.alg, kid=key.kid, typ=LOGOUT_TOKEN_TYP), jti

    # -------------------------------------------------------- after the commit
    def _pending(self) -> dict[tuple[str, str], Delivery]:
        """This transaction's deliveries, one per (client, session), kept on the database
        session until it commits."""
        if not self.db.info.get(_HOOKED_KEY):
            self.db.info[_HOOKED_KEY] = True
            dispatcher = self._dispatcher  # None: the process-wide one, looked up when sending

            def committed(db: Session) -> None:
                deliveries = db.info.pop(_PENDING_KEY, None)
                if not deliveries:
                    return
                try:
                    (dispatcher or default_dispatcher()).submit(list(deliveries.values()))
                except Exception:  # noqa: BLE001 - the commit is done; its caller must not fail now
                    log.exception("backchannel logout: %d deliveries could not be queued", len(deliveries))

            def ended(db: Session, transaction: Any) -> None:
                # Runs after ``committed`` on a commit (nothing left by then); otherwise the
                # transaction was rolled back or abandoned and its logouts never happened.
                if transaction.parent is None:
                    db.info.pop(_PENDING_KEY, None)

            event.listen(self.db, "after_commit", committed)
            event.listen(self.db, "after_transaction_end", ended)
        return self.db.info.setdefault(_PENDING_KEY, {})


# ---------------------------------------------------------------- delivery
_tls_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    # Certificates and host names verified (the default context); built once, shared by
    # the worker threads (an SSLContext is safe to share).
    global _tls_context
    if _tls_context is None:
        _tls_context = ssl.create_default_context()
    return _tls_context


def post_form(uri: str, body: bytes, *, timeout: float) -> int:
    """POST a form and return the status. Standard library on purpose: http.client never
    follows redirects and never reads proxy settings from the environment."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    deadline = time.monotonic() + timeout
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=_tls())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        conn.connect()
        # Each step gets only what is left of the timeout, not a fresh one (an RP that
        # trickles its status line byte by byte can still stretch it, holding a worker
        # thread, never a sign-out).
        conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": _USER_AGENT,
        })
        conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        return conn.getresponse().status  # the body is of no interest
    finally:
        conn.close()


class Dispatcher:
    """Worker threads that POST logout tokens; one per process (``default_dispatcher``)."""

    def __init__(
        self,
        *,
        workers: int = MAX_PARALLEL,
        max_pending: int = MAX_PENDING,
        down_seconds: float = DOWN_SECONDS,
        post: Callable[..., int] = post_form,
    ) -> None:
        self.workers = workers
        self.max_pending = max_pending
        self.down_seconds = down_seconds
        self.post = post
        self._cond = threading.Condition()
        self._queue: collections.deque[Delivery] = collections.deque()
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self.pid = os.getpid()
        self._down_until: dict[str, float] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        # The longest timeout asked for: what process exit waits at most.
        self.longest_timeout = 0.0
        # Called with each outcome, e.g. to feed /metrics; must not raise or block.
        self.on_outcome: list[Callable[[str], None]] = []

    # ------------------------------------------------------------ interface
    def submit(self, deliveries: Iterable[Delivery]) -> None:
        dropped: list[Delivery] = []
        with self._cond:
            for delivery in deliveries:
                if len(self._queue) >= self.max_pending:
                    dropped.append(delivery)
                    continue
                self._queue.append(delivery)
                self.longest_timeout = max(self.longest_timeout, delivery.timeout)
            self._start_workers()
            self._cond.notify_all()
        for delivery in dropped:
            self._outcome(delivery, DROPPED)

    def drain(self, timeout: float) -> int:
        """Wait until nothing is queued or in flight, at most ``timeout`` seconds; returns
        how many deliveries were still unfinished."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return len(self._queue) + self._busy

    def counts(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counts)

    def count(self, outcome: str) -> None:
        with self._cond:
            self._counts[outcome] += 1

    def abandon(self) -> int:
        """Give up what is still queued (process exit); returns how many."""
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        for delivery in left:
            self._outcome(delivery, ABANDONED)
        return len(left)

    # ------------------------------------------------------------- workers
    def _start_workers(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        wanted = min(self.workers, len(self._queue) + self._busy)
        while len(self._threads) < wanted:
            thread = threading.Thread(target=self._work, name="backchannel-logout", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                delivery = self._queue.popleft()
                self._busy += 1
            try:
                self._deliver(delivery)
            except Exception:  # noqa: BLE001 - a worker must outlive any one relying party
                log.exception("backchannel logout failed unexpectedly: client=%s", delivery.client_id)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        with self._cond:
            down = self._down_until.get(delivery.uri, 0.0) > time.monotonic()
        if down:
            self._outcome(delivery, SKIPPED)
            return
        body = urlencode({"logout_token": delivery.logout_token}).encode()
        started = time.monotonic()
        status: int | None = None
        try:
            status = self.post(delivery.uri, body, timeout=delivery.timeout)
            outcome = DELIVERED if 200 <= status < 300 else REJECTED
        except TimeoutError:
            outcome = TIMEOUT
        except (OSError, http.client.HTTPException, ValueError):
            outcome = UNREACHABLE
        with self._cond:
            if outcome in (TIMEOUT, UNREACHABLE):
                self._down_until[delivery.uri] = time.monotonic() + self.down_seconds
            else:
                self._down_until.pop(delivery.uri, None)
        self._outcome(delivery, outcome, status=status, elapsed=time.monotonic() - started)

    def _outcome(self, delivery: Delivery, outcome: str, *, status: int | None = None,
                 elapsed: float | None = None) -> None:
        self.count(outcome)
        for observe in list(self.on_outcome):
            try:
                observe(outcome)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the deliveries
                log.exception("backchannel logout: outcome observer failed")
        level = logging.INFO if outcome == DELIVERED else logging.WARNING
        log.log(level, "backchannel logout %s: client=%s sid=%s jti=%s status=%s elapsed_ms=%s",
                outcome, delivery.client_id, delivery.session_id, delivery.jti, status,
                None if elapsed is None else round(elapsed * 1000))


_default: Dispatcher | None = None
_default_lock = threading.Lock()


def default_dispatcher() -> Dispatcher:
    global _default
    with _default_lock:
        if _default is None:
            _default = Dispatcher()
            atexit.register(_drain_at_exit, _default)
        return _default


def _forget_in_child() -> None:
    # A forked child (a server's worker process) has none of its parent's threads and may have
    # copied a held lock: it starts its own dispatcher; the parent delivers what it queued.
    global _default, _default_lock
    _default, _default_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def _drain_at_exit(dispatcher: Dispatcher) -> None:
    # The CLI's process ends right after its commit: give the logouts it queued their
    # chance, but no more than one timeout (workers are daemon threads and die after).
    if dispatcher.pid != os.getpid():
        return  # inherited across a fork: the parent's to finish
    left = dispatcher.drain(dispatcher.longest_timeout + _EXIT_GRACE_SECONDS)
    if left:
        abandoned = dispatcher.abandon()
        log.warning("backchannel logout: %d queued and %d in flight still unfinished at exit",
                    abandoned, max(left - abandoned, 0))
