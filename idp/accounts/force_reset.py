"""The operator's forced reset: one account, or every account in resumable batches.

What happens to each account (DESIGN section 1, issue 7): the password becomes unusable
(``password_hash`` None, ``must_change_password`` set), every SSO session ends (which
revokes the tokens those sessions led to, through the sessions' ``on_end`` hook), every
remaining refresh and access token is revoked, outstanding reset links die, and, when the
address is verified and the account active, a reset link is mailed to the address on
file. Second factors are untouched: the next sign-in needs the link *and* the factor.

``--all`` over a million accounts:

- Idempotent: accounts still waiting on an earlier forced reset (no password,
  ``must_change_password``) are skipped, so a second ``--all`` (or ``--all`` after
  ``--email``) mails nobody again; ``--email`` always acts, it is explicit.
- Keyset pagination by ``users.id`` (``id > cursor ORDER BY id LIMIT n``): memory holds
  one batch, whatever the table size; each batch is one transaction.
- Progress lives in ``force_reset_runs``: the cursor (last account done) moves in the
  same transaction as the batch, so a batch is either wholly done or not at all. An
  interrupted run is resumed by running the same command; only accounts that existed
  when the run started are in it (``created_at <= started_at``).
- Mail leaves after its batch commits (a link is never mailed for a token that could
  roll back). ``mailing`` is set in the batch's transaction and cleared, with
  ``mailed_through`` (the last account mailed), once the batch's mail is out. A stop
  asked for by a signal or ``--max-batches`` is honoured between two mails and recorded
  exactly, so the resumed run mails precisely the rest; so is a mailer error (the
  SMTP server away): the run stops there and the same command resumes it. A hard kill (SIGKILL, power)
  while mailing leaves ``mailing`` set: which of that one batch's messages left is
  unknown, so none is sent again (nobody is mailed twice); they are listed in the audit
  log as ``password.force_reset_mail_unconfirmed`` and counted on stderr, and those
  people can ask /reset for a link themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.orm import Session

from idp.accounts.emails import normalize_email
from idp.accounts.reset import RESET_PASSWORD, kill_reset_tokens, reset_link
from idp.audit import AuditService
from idp.crypto.tokens import new_secret, sha256_hex
from idp.db import utcnow
from idp.errors import InvalidInput, NotFound
from idp.models import EmailToken, ForceResetRun, IssuedAccessToken, RefreshToken, SsoSession, User
from idp.notify.queue import Composer
from idp.oauth.store import TokenStore
from idp.sessions import SessionService

DEFAULT_BATCH_SIZE = 500


@dataclass
class Pending:
    """A reset link to mail once its batch has committed (the secret lives only here)."""

    user_id: str
    email: str
    link: str


@dataclass
class RunReport:
    run_id: str
    resumed: bool
    users_done: int
    mails_sent: int
    unconfirmed: int = 0
    finished: bool = False
    stopped: str | None = None  # "signal", "max_batches" or "mail_error" when not finished
    error: str | None = None  # the mailer's error, for "mail_error"


class ForceResetService:
    def __init__(
        self,
        *,
        db: Session,
        sessions: SessionService,
        tokens: TokenStore,
        audit: AuditService,
        issuer: str,
        link_seconds: int,
    ) -> None:
        self.db = db
        self.sessions = sessions
        self.tokens = tokens
        self.audit = audit
        self.issuer = issuer
        self.link_lifetime = dt.timedelta(seconds=link_seconds)

    # ----------------------------------------------------------------- one account
    def one(self, raw_email: str, *, mail: Composer) -> bool:
        """Force a reset of one account in the current transaction; the link goes to
        ``mail`` (send it after the commit). True when a link was queued."""
        try:
            email = normalize_email(raw_email)
        except InvalidInput as error:
            raise InvalidInput(f"--email: {error.public_message}") from None
        row = self.db.execute(self._columns().where(User.email == email)).one_or_none()
        if row is None:
            raise NotFound(f"no account for {email}")
        pending = self._lock_out([row], run_id=None)
        for item in pending:
            self._send(item, mail)
        return bool(pending)

    # ----------------------------------------------------------------- all accounts
    def run_all(
        self,
        *,
        mail: Composer,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batches: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[RunReport, int], None] = lambda _report, _batch: None,
        warn: Callable[[str], None] = lambda _message: None,
    ) -> RunReport:
        """Every account that exists now, ``batch_size`` per transaction. Resumes the
        unfinished run if there is one. Commits as it goes."""
        run = self.db.scalar(
            select(ForceResetRun).where(ForceResetRun.finished_at.is_(None)).order_by(ForceResetRun.started_at.desc())
        )
        resumed = run is not None
        if run is None:
            run = ForceResetRun(started_at=utcnow())
            self.db.add(run)
            self.db.flush()
            self.audit.record("password.force_reset_run_started", run=run.id, batch_size=batch_size)
            self.db.commit()
        run_id, cutoff = run.id, run.started_at
        report = RunReport(run_id=run_id, resumed=resumed, users_done=run.users_done, mails_sent=run.mails_sent)

        if run.mailing:
            report.unconfirmed = self._give_up_unconfirmed(run)
            warn(f"{report.unconfirmed} account(s) of the batch being mailed when the last run was killed may"
                 " not have received their mail; not mailed again (audit: password.force_reset_mail_unconfirmed)")
        elif run.mailed_through != run.cursor:
            # Stopped between two mails: mail precisely the rest of that batch.
            pending = self._relink_unmailed(run, cutoff)
            if not self._mail(run, pending, mail, should_stop, report):
                report.stopped = "mail_error" if report.error else "signal"
                return report

        batches = 0
        while True:
            if should_stop():
                report.stopped = "signal"
                return report
            if max_batches is not None and batches >= max_batches:
                report.stopped = "max_batches"
                return report
            stmt = (
                self._columns()
                # Accounts still waiting on an earlier forced reset already have their link:
                # a second run (or `--all` after `--email`) does not mail them again.
                .where(User.created_at <= cutoff, or_(User.password_hash.is_not(None),
                                                      User.must_change_password.is_(False)))
                .order_by(User.id)
                .limit(batch_size)
            )
            if run.cursor is not None:
                stmt = stmt.where(User.id > run.cursor)
            rows = list(self.db.execute(stmt))
            if not rows:
                break
            pending = self._lock_out(rows, run_id=run_id)
            run.cursor = rows[-1].id
            run.users_done += len(rows)
            run.mailing = True
            self.db.commit()  # the batch, its links and the cursor: all or nothing
            report.users_done = run.users_done
            batches += 1
            done = self._mail(run, pending, mail, should_stop, report)
            self.db.expunge_all()  # bounded memory: nothing of this batch stays in the session
            run = self.db.get(ForceResetRun, run_id)  # type: ignore[assignment]
            progress(report, batches)
            if not done:
                report.stopped = "mail_error" if report.error else "signal"
                return report
        run.finished_at = utcnow()
        self.audit.record("password.force_reset_run_finished", run=run_id, users=run.users_done,
                          mailed=run.mails_sent)
        self.db.commit()
        report.finished = True
        return report

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _columns():  # type: ignore[no-untyped-def]
        return select(User.id, User.email, User.email_verified_at, User.disabled_at)

    def _lock_out(self, rows: Sequence[Row], *, run_id: str | None) -> list[Pending]:  # type: ignore[type-arg]
        """The batch in the current transaction: a handful of set-based statements, plus
        per-account calls only for accounts that have something live to end."""
        now = utcnow()
        ids = [r.id for r in rows]
        self.db.execute(
            update(User)
            .where(User.id.in_(ids))
            .values(password_hash=None, must_change_password=True, password_changed_at=now)
            .execution_options(synchronize_session=False)
        )
        kill_reset_tokens(self.db, ids)
        with_sessions = set(self.db.scalars(
            select(SsoSession.user_id).where(SsoSession.user_id.in_(ids), SsoSession.ended_at.is_(None)).distinct()
        ))
        with_tokens = set(self.db.scalars(
            select(RefreshToken.user_id).where(RefreshToken.user_id.in_(ids), RefreshToken.revoked_at.is_(None))
            .distinct()
        )) | set(self.db.scalars(
            select(IssuedAccessToken.user_id)
            .where(IssuedAccessToken.user_id.in_(ids), IssuedAccessToken.revoked_at.is_(None)).distinct()
        ))
        pending: list[Pending] = []
        for row in rows:
            ended = (self.sessions.end_all_for_user(row.id, reason="forced_reset", ctx=None)
                     if row.id in with_sessions else 0)
            revoked = self.tokens.revoke_for_user(row.id) if row.id in with_tokens else 0
            mailable = row.email_verified_at is not None and row.disabled_at is None
            if mailable:
                pending.append(self._new_link(row.id, row.email, now))
            self.audit.record("password.force_reset", user_id=row.id, run=run_id, mailed=mailable,
                              sessions_ended=ended, tokens_revoked=revoked)
        return pending

    def _new_link(self, user_id: str, email: str, now: dt.datetime) -> Pending:
        secret = new_secret()
        self.db.add(
            EmailToken(purpose=RESET_PASSWORD, user_id=user_id, email=email, token_hash=sha256_hex(secret),
                       created_at=now, expires_at=now + self.link_lifetime)
        )
        return Pending(user_id=user_id, email=email, link=reset_link(self.issuer, secret))

    def _send(self, item: Pending, mail: Composer) -> None:
        seconds = int(self.link_lifetime.total_seconds())
        lifetime = f"{seconds // 3600} hours" if seconds % 3600 == 0 else f"{max(1, seconds // 60)} minutes"
        mail.send("password_force_reset", to=item.email, subject="Your password has been reset",
                  link=item.link, lifetime=lifetime, reset_url=f"{self.issuer}/reset")

    def _mail(self, run: ForceResetRun, pending: list[Pending], mail: Composer, should_stop: Callable[[], bool],
              report: RunReport) -> bool:
        """Send the batch's links in id order; False when a stop was asked for midway."""
        last: str | None = None
        sent = 0
        stopped = False
        for item in pending:
            if should_stop():
                stopped = True
                break
            try:
                self._send(item, mail)
            except Exception as error:  # noqa: BLE001 - mail server away: stop cleanly, resumable
                first_line = (str(error).strip().splitlines() or [""])[0]
                report.error = f"{type(error).__name__}: {first_line}"
                stopped = True
                break
            last = item.user_id
            sent += 1
        run.mails_sent += sent
        report.mails_sent = run.mails_sent
        if stopped:
            if last is not None:
                run.mailed_through = last
        else:
            run.mailed_through = run.cursor
        run.mailing = False
        self.db.commit()
        return not stopped

    def _range(self, run: ForceResetRun):  # type: ignore[no-untyped-def]
        """Accounts after ``mailed_through`` up to the cursor: done, mail not confirmed."""
        cond = [User.id <= run.cursor, User.created_at <= run.started_at]
        if run.mailed_through is not None:
            cond.append(User.id > run.mailed_through)
        return and_(*cond)

    def _relink_unmailed(self, run: ForceResetRun, cutoff: dt.datetime) -> list[Pending]:
        rows = list(self.db.execute(
            self._columns().where(
                self._range(run), User.password_hash.is_(None), User.email_verified_at.is_not(None),
                User.disabled_at.is_(None),
            ).order_by(User.id)
        ))
        ids = [r.id for r in rows]
        if ids:
            kill_reset_tokens(self.db, ids)  # links created for the unsent mail: never seen
        now = utcnow()
        pending = [self._new_link(r.id, r.email, now) for r in rows]
        run.mailing = True
        self.db.commit()
        return pending

    def _give_up_unconfirmed(self, run: ForceResetRun) -> int:
        ids = list(self.db.scalars(
            select(User.id).where(self._range(run), User.email_verified_at.is_not(None),
                                  User.disabled_at.is_(None)).order_by(User.id)
        ))
        for user_id in ids:
            self.audit.record("password.force_reset_mail_unconfirmed", user_id=user_id, run=run.id)
        run.mailed_through = run.cursor
        run.mailing = False
        self.db.commit()
        return len(ids)
