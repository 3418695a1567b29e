"""Passkeys (WebAuthn Level 3): registration, usernameless sign-in, second factor.

Challenges live server-side (``mfa_webauthn_challenges``) and are deleted when used,
whether the ceremony then succeeds or not: a response can be verified at most once.
Credentials are found by credential id (unique index); a usernameless assertion must
also carry the user handle we gave that user (§7.2 step 6).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from idp.audit import AuditService
from idp.context import RequestContext
from idp.db import utcnow
from idp.mfa import webauthn_adapter
from idp.mfa.errors import ChallengeExpired, FactorNotAllowed, PasskeyRejected
from idp.models import User, WebAuthnChallenge, WebAuthnCredential, WebAuthnUserHandle

PURPOSE_REGISTER = "register"
PURPOSE_SIGNIN = "signin"  # usernameless: no user known until the assertion names one
PURPOSE_SECOND_FACTOR = "second_factor"
CHALLENGE_LIFETIME = dt.timedelta(milliseconds=webauthn_adapter.TIMEOUT_MS)
MAX_CREDENTIALS = 20


@dataclass(frozen=True, slots=True)
class PasskeyUse:
    user_id: str
    credential: WebAuthnCredential
    user_verified: bool


class PasskeyService:
    def __init__(
        self,
        *,
        db: Session,
        audit: AuditService,
        rp_id: str,
        origin: str,
        rp_name: str,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.audit = audit
        self.expected_rp_id = rp_id
        self.expected_origin = origin
        self.rp_name = rp_name
        self.clock = clock

    # ------------------------------------------------------------- challenges
    def _new_challenge(self, purpose: str, challenge: bytes, user_id: str | None) -> str:
        now = self.clock()
        # Expired challenges of anyone are swept here: the table stays small.
        self.db.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < now))
        record = WebAuthnChallenge(
            purpose=purpose, user_id=user_id, challenge=challenge, expires_at=now + CHALLENGE_LIFETIME
        )
        self.db.add(record)
        self.db.flush()
        return record.id

    def _consume_challenge(self, challenge_id: str | None, purpose: str) -> WebAuthnChallenge:
        if not challenge_id or len(challenge_id) > 32:
            raise ChallengeExpired(detail="no challenge in this browser")
        record = self.db.get(WebAuthnChallenge, challenge_id)
        if record is None or record.purpose != purpose:
            raise ChallengeExpired(detail="challenge unknown or already used")
        # Delete first, verify second: a replayed response finds nothing to verify against.
        gone = self.db.execute(
            delete(WebAuthnChallenge)
            .where(WebAuthnChallenge.id == record.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        self.db.expunge(record)
        if gone != 1:
            raise ChallengeExpired(detail="challenge consumed concurrently")
        if self.clock() >= record.expires_at:
            raise ChallengeExpired(detail="challenge expired")
        return record

    # ------------------------------------------------------------ user handle
    def user_handle(self, user: User) -> str:
        record = self.db.get(WebAuthnUserHandle, user.id)
        if record is None:
            record = WebAuthnUserHandle(user_id=user.id, handle=webauthn_adapter.new_user_handle())
            self.db.add(record)
            self.db.flush()
        return record.handle

    # ----------------------------------------------------------- registration
    def registration_options(self, user: User) -> tuple[dict[str, Any], str]:
        existing = self.for_user(user)
        if len(existing) >= MAX_CREDENTIALS:
            raise FactorNotAllowed(f"You can have at most {MAX_CREDENTIALS} passkeys.")
        options, challenge = webauthn_adapter.registration_options(
            rp_id=self.expected_rp_id,
            rp_name=self.rp_name,
            user_handle=self.user_handle(user),
            user_name=user.email,
            exclude=[c.credential_id for c in existing],
        )
        return options, self._new_challenge(PURPOSE_REGISTER, challenge, user.id)

    def register(
        self, user: User, challenge_id: str | None, credential: dict[str, Any], *, name: str, ctx: RequestContext
    ) -> WebAuthnCredential:
        challenge = self._consume_challenge(challenge_id, PURPOSE_REGISTER)
        if challenge.user_id != user.id:
            raise ChallengeExpired(detail="challenge issued to another user")
        try:
            key = webauthn_adapter.verify_registration(
                credential,
                expected_challenge=challenge.challenge,
                expected_rp_id=self.expected_rp_id,
                expected_origin=self.expected_origin,
            )
        except PasskeyRejected as error:
            self.audit.record("passkey.registration_failed", ctx=ctx, user_id=user.id, reason=error.detail)
            raise
        record = WebAuthnCredential(
            user_id=user.id,
            credential_id=key.credential_id,
            public_key=key.public_key,
            sign_count=key.sign_count,
            name=name,
            aaguid=key.aaguid,
            backed_up=key.backed_up,
            created_at=self.clock(),
        )
        taken = self.db.scalar(
            select(WebAuthnCredential.id).where(WebAuthnCredential.credential_id == key.credential_id)
        )
        if taken is not None:
            # excludeCredentials makes browsers refuse this; a scripted client may not.
            self.audit.record("passkey.registration_failed", ctx=ctx, user_id=user.id, reason="duplicate credential id")
            raise PasskeyRejected("That passkey is already registered.")
        self.db.add(record)
        self.db.flush()
        return record

    # --------------------------------------------------------- authentication
    def authentication_options(self, user: User | None) -> tuple[dict[str, Any], str]:
        """user=None: usernameless sign-in; a user: the second factor for that account."""
        if user is None:
            options, challenge = webauthn_adapter.authentication_options(rp_id=self.expected_rp_id, allow=None)
            return options, self._new_challenge(PURPOSE_SIGNIN, challenge, None)
        allow = [c.credential_id for c in self.for_user(user)]
        if not allow:
            raise FactorNotAllowed("This account has no passkey.")
        options, challenge = webauthn_adapter.authentication_options(rp_id=self.expected_rp_id, allow=allow)
        return options, self._new_challenge(PURPOSE_SECOND_FACTOR, challenge, user.id)

    def authenticate(
        self,
        challenge_id: str | None,
        credential: dict[str, Any],
        *,
        expected_user_id: str | None,
        ctx: RequestContext,
    ) -> PasskeyUse:
        """Verify an assertion. expected_user_id=None: usernameless sign-in."""
        purpose = PURPOSE_SIGNIN if expected_user_id is None else PURPOSE_SECOND_FACTOR
        challenge = self._consume_challenge(challenge_id, purpose)
        if challenge.user_id != expected_user_id:
            raise ChallengeExpired(detail="challenge issued for another user")
        ids = webauthn_adapter.assertion_ids(credential)
        record = self.db.scalar(select(WebAuthnCredential).where(WebAuthnCredential.credential_id == ids.credential_id))
        if record is None:
            # Removed, or never ours: the same answer as any other failure.
            self.audit.record("passkey.failed", ctx=ctx, user_id=expected_user_id, reason="unknown credential")
            raise PasskeyRejected(detail="unknown credential id")
        if expected_user_id is not None and record.user_id != expected_user_id:
            self.audit.record("passkey.failed", ctx=ctx, user_id=expected_user_id, reason="credential of another user")
            raise PasskeyRejected(detail="credential belongs to another user")
        if expected_user_id is None:
            handle = self.db.get(WebAuthnUserHandle, record.user_id)
            if handle is None or ids.user_handle != handle.handle:
                self.audit.record("passkey.failed", ctx=ctx, user_id=record.user_id, reason="user handle mismatch")
                raise PasskeyRejected(detail="user handle does not match the credential")
        try:
            verified = webauthn_adapter.verify_assertion(
                credential,
                expected_challenge=challenge.challenge,
                expected_rp_id=self.expected_rp_id,
                expected_origin=self.expected_origin,
                public_key=record.public_key,
                stored_sign_count=record.sign_count,
            )
        except webauthn_adapter.SignCountRegressed as error:
            self.audit.record(
                "passkey.sign_count_regressed", ctx=ctx, user_id=record.user_id, credential=record.id,
                stored=record.sign_count, detail=error.detail,
            )
            raise
        except PasskeyRejected as error:
            self.audit.record("passkey.failed", ctx=ctx, user_id=record.user_id, credential=record.id,
                              reason=error.detail)
            raise
        if expected_user_id is None and not verified.user_verified:
            # A passkey alone is a sign-in only with its PIN or biometric (two factors in one).
            self.audit.record("passkey.failed", ctx=ctx, user_id=record.user_id, reason="no user verification")
            raise PasskeyRejected("This passkey did not verify you (PIN or biometric). Sign in with your password.")
        record.sign_count = verified.sign_count
        record.backed_up = verified.backed_up
        record.last_used_at = self.clock()
        return PasskeyUse(user_id=record.user_id, credential=record, user_verified=verified.user_verified)

    # ------------------------------------------------------------- management
    def for_user(self, user: User) -> list[WebAuthnCredential]:
        stmt = select(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id).order_by(
            WebAuthnCredential.created_at
        )
        return list(self.db.scalars(stmt))

    def get(self, user: User, record_id: str) -> WebAuthnCredential | None:
        record = self.db.get(WebAuthnCredential, record_id) if len(record_id) <= 32 else None
        if record is None or record.user_id != user.id:
            return None
        return record

    def remove(self, record: WebAuthnCredential) -> None:
        self.db.delete(record)
        self.db.flush()
