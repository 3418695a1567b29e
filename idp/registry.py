"""Long-lived collaborators built once per app, and the per-request service set.

``Registry`` holds what is expensive or process-wide (engine, key-encryption key,
hasher, mailer); ``Services`` wires the small domain services around one database
session. Views and the CLI both go through ``Services``: one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from idp.accounts.hashing import PasswordHasher
from idp.accounts.passwords import (
    MIN_LENGTH_SINGLE_FACTOR,
    MIN_LENGTH_WITH_MFA,
    BreachedPasswords,
    PasswordPolicy,
)
from idp.accounts.email_change import EmailChangeService
from idp.accounts.force_reset import ForceResetService
from idp.accounts.password_change import PasswordChangeService
from idp.accounts.reset import PasswordResetService
from idp.accounts.service import AccountService
from idp.accounts.status import AccountStatusService
from idp.audit import AuditService
from idp.breached.service import breached_from_settings
from idp.clients.service import ClientService
from idp.crypto import kek as kek_module
from idp.crypto.kek import Kek
from idp.db import make_engine, make_sessionmaker
from idp.keys.service import KeyCache, KeyService, SqlKeyStore
from idp.mfa.enrolment import EnrolmentService
from idp.mfa.passkeys import PasskeyService
from idp.mfa.policy import StepUpService
from idp.mfa.recovery import RecoveryCodeService
from idp.mfa.totp import TotpService
from idp.notify.mailer import FileOutboxMailer, Mailer, SmtpMailer
from idp.notify.messages import MailComposer
from idp.notify.queue import Composer
from idp.oauth.backchannel import BackchannelLogout
from idp.oauth.consents import ConsentService
from idp.oauth.store import TokenStore
from idp.oauth.tokens import TokenMinter
from idp.sessions import SessionService
from idp.settings import Settings

if TYPE_CHECKING:
    from idp.protection import Protection

# templates/ sits beside the package (the repository layout); pages and mail share it.
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@dataclass(kw_only=True)
class Registry:
    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    kek: Kek
    hasher: PasswordHasher
    breached: BreachedPasswords
    mailer: Mailer

    @classmethod
    def build(cls, settings: Settings, *, mailer: Mailer | None = None) -> Registry:
        engine = make_engine(settings.database_url)
        if mailer is None:
            mailer = SmtpMailer(settings.smtp_url) if settings.smtp_url else FileOutboxMailer(settings.mail_outbox)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=make_sessionmaker(engine),
            kek=kek_module.load_or_create(settings.keys_dir, settings.kek),
            hasher=PasswordHasher(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
            breached=breached_from_settings(settings),
            mailer=mailer,
        )

    @cached_property
    def mail(self) -> MailComposer:
        return MailComposer(
            templates_dir=TEMPLATES_DIR,
            mail_from=self.settings.mail_from,
            service_name=self.settings.service_name,
            mailer=self.mailer,
        )

    @cached_property
    def key_cache(self) -> KeyCache:
        """Loaded signing keys, shared by the requests of this process (idp/keys)."""
        return KeyCache()

    @cached_property
    def password_policy(self) -> PasswordPolicy:
        # SP 800-63B-4: 8 characters suffice only when a second factor is required.
        required = self.settings.mfa_policy == "required"
        return PasswordPolicy(
            min_length=MIN_LENGTH_WITH_MFA if required else MIN_LENGTH_SINGLE_FACTOR,
            service_name=self.settings.service_name,
            breached=self.breached,
        )

    @cached_property
    def protection(self) -> Protection:
        """Counters, rules, device cookies (idp/protection). Built at start-up by
        protection.init_app, before any thread could race to build a second one."""
        from idp.protection import Protection

        return Protection.build(self.settings, self.kek)

    def services(self, db: Session, *, mail: Composer | None = None) -> Services:
        return Services(registry=self, db=db, mail=mail)


class Services:
    def __init__(self, *, registry: Registry, db: Session, mail: Composer | None = None) -> None:
        self.registry = registry
        self.db = db
        # Web requests pass a MailQueue sent after the response (idp/web/requests.py):
        # the answer's timing tells nothing, and a mail server that is down cannot turn a
        # committed change into a 500. The CLI sends at once.
        self.mail: Composer = mail or registry.mail

    @cached_property
    def audit(self) -> AuditService:
        return AuditService(db=self.db)

    @cached_property
    def accounts(self) -> AccountService:
        s = self.registry.settings
        return AccountService(
            db=self.db,
            hasher=self.registry.hasher,
            policy=self.registry.password_policy,
            audit=self.audit,
            mail=self.mail,
            issuer=s.issuer,
            verification_seconds=s.email_verification_seconds,
        )

    @cached_property
    def clients(self) -> ClientService:
        return ClientService(db=self.db, audit=self.audit)

    @cached_property
    def signing_keys(self) -> KeyService:
        from idp.keys.service import MAX_TOKEN_SECONDS
        from idp.oauth.tokens import ID_TOKEN_SECONDS

        r, s = self.registry, self.registry.settings
        # A superseded key stays published as long as the longest-lived token it signed.
        return KeyService(store=SqlKeyStore(self.db), kek=r.kek, cache=r.key_cache, sessionmaker=r.sessionmaker,
                          audit=self.audit, upcoming_seconds=s.key_upcoming_seconds,
                          rotation_days=s.key_rotation_days, token_seconds=max(MAX_TOKEN_SECONDS, ID_TOKEN_SECONDS))

    @cached_property
    def oauth_tokens(self) -> TokenStore:
        return TokenStore(db=self.db, audit=self.audit)

    @cached_property
    def token_minter(self) -> TokenMinter:
        return TokenMinter(keys=self.signing_keys, issuer=self.registry.settings.issuer)

    @cached_property
    def consents(self) -> ConsentService:
        return ConsentService(db=self.db, audit=self.audit, tokens=self.oauth_tokens)

    @cached_property
    def sessions(self) -> SessionService:
        s = self.registry.settings
        return SessionService(
            db=self.db,
            audit=self.audit,
            idle_seconds=s.session_idle_seconds,
            max_seconds=s.session_max_seconds,
            on_end=self._revoke_tokens_of_sessions,
        )

    def _revoke_tokens_of_sessions(self, session_ids: Sequence[str]) -> None:
        # Sign-out, "end this session", idle or absolute end, password change, forced
        # reset, account disable: every session end comes through here. The access and
        # refresh tokens that session led to stop working too (introspection, userinfo,
        # refresh), and the relying parties that registered a back-channel logout URI are
        # told (after the commit: idp/oauth/backchannel.py).
        for session_id in session_ids:
            self.oauth_tokens.revoke_for_session(session_id)
        self.backchannel.sessions_ended(session_ids)

    @cached_property
    def backchannel(self) -> BackchannelLogout:
        s = self.registry.settings
        return BackchannelLogout(db=self.db, keys=self.signing_keys, audit=self.audit, issuer=s.issuer,
                                 timeout_seconds=s.backchannel_logout_timeout_ms / 1000)

    @cached_property
    def password_change(self) -> PasswordChangeService:
        return PasswordChangeService(
            db=self.db,
            hasher=self.registry.hasher,
            policy=self.registry.password_policy,
            audit=self.audit,
            sessions=self.sessions,
        )

    # ------------------------------------------------- password reset (issue 7)
    def password_reset(self, *, mail: Composer | None = None) -> PasswordResetService:
        """``mail``: a MailQueue when the caller sends after committing (the web view
        sends after the response, so timing tells nothing)."""
        s = self.registry.settings
        return PasswordResetService(
            db=self.db, accounts=self.accounts, password_change=self.password_change, tokens=self.oauth_tokens,
            audit=self.audit, mail=mail or self.mail, issuer=s.issuer,
            lifetime_seconds=s.password_reset_seconds,
        )

    @cached_property
    def force_reset(self) -> ForceResetService:
        s = self.registry.settings
        return ForceResetService(db=self.db, sessions=self.sessions, tokens=self.oauth_tokens, audit=self.audit,
                                 issuer=s.issuer, link_seconds=s.force_reset_link_seconds)

    # ------------------------------------------------------------- mfa (issue 4)
    @cached_property
    def totp(self) -> TotpService:
        return TotpService(db=self.db, kek=self.registry.kek, issuer_name=self.registry.settings.service_name)

    @cached_property
    def passkeys(self) -> PasskeyService:
        s = self.registry.settings
        # WebAuthn L3 §5.1.2: the RP ID is the issuer's host; the origin is the issuer.
        return PasskeyService(db=self.db, audit=self.audit, rp_id=s.issuer_host, origin=s.issuer,
                              rp_name=s.service_name)

    @cached_property
    def recovery_codes(self) -> RecoveryCodeService:
        return RecoveryCodeService(db=self.db, key=self.registry.kek.derive("mfa.recovery-codes"))

    @cached_property
    def enrolment(self) -> EnrolmentService:
        return EnrolmentService(db=self.db, audit=self.audit, mail=self.mail,
                                issuer=self.registry.settings.issuer)

    @cached_property
    def step_up(self) -> StepUpService:
        return StepUpService(db=self.db, audit=self.audit, sessions=self.sessions,
                             mfa_policy=self.registry.settings.mfa_policy)

    # ------------------------------------------- operator levers on accounts (issue 7)
    @cached_property
    def account_status(self) -> AccountStatusService:
        # Protection is reached lazily: only `unlock` needs the counters (Redis).
        return AccountStatusService(db=self.db, sessions=self.sessions, tokens=self.oauth_tokens, audit=self.audit,
                                    attack=lambda: self.registry.protection.attack)

    @cached_property
    def email_change(self) -> EmailChangeService:
        return EmailChangeService(db=self.db, accounts=self.accounts, audit=self.audit, mail=self.mail,
                                  issuer=self.registry.settings.issuer)
