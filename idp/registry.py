"""Long-lived collaborators built once per app, and the per-request service set.

``Registry`` holds what is expensive or process-wide (engine, key-encryption key,
hasher, mailer); ``Services`` wires the small domain services around one database
session. Views and the CLI both go through ``Services``: one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from idp.accounts.hashing import PasswordHasher
from idp.accounts.passwords import (
    MIN_LENGTH_SINGLE_FACTOR,
    MIN_LENGTH_WITH_MFA,
    BreachedPasswords,
    NoBreachedPasswords,
    PasswordPolicy,
)
from idp.accounts.service import AccountService
from idp.audit import AuditService
from idp.crypto import kek as kek_module
from idp.crypto.kek import Kek
from idp.db import make_engine, make_sessionmaker
from idp.notify.mailer import FileOutboxMailer, Mailer, SmtpMailer
from idp.notify.messages import MailComposer
from idp.sessions import SessionService
from idp.settings import Settings

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
            breached=NoBreachedPasswords(),
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
    def password_policy(self) -> PasswordPolicy:
        # SP 800-63B-4: 8 characters suffice only when a second factor is required.
        required = self.settings.mfa_policy == "required"
        return PasswordPolicy(
            min_length=MIN_LENGTH_WITH_MFA if required else MIN_LENGTH_SINGLE_FACTOR,
            service_name=self.settings.service_name,
            breached=self.breached,
        )

    def services(self, db: Session) -> Services:
        return Services(registry=self, db=db)


class Services:
    def __init__(self, *, registry: Registry, db: Session) -> None:
        self.registry = registry
        self.db = db

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
            mail=self.registry.mail,
            issuer=s.issuer,
            verification_seconds=s.email_verification_seconds,
        )

    @cached_property
    def sessions(self) -> SessionService:
        s = self.registry.settings
        return SessionService(
            db=self.db, audit=self.audit, idle_seconds=s.session_idle_seconds, max_seconds=s.session_max_seconds
        )
