"""Typed MFA errors; rendered by idp/web/errors.py like every IdpError."""

from __future__ import annotations

from idp.errors import IdpError


class InvalidCode(IdpError):
    """Wrong, reused, expired or malformed one-time code: one message for all of them."""

    status = 400
    code = "invalid_code"
    public_message = "That code is not right. Check the code and try again."


class PasskeyRejected(IdpError):
    """Any WebAuthn verification failure; the reason goes to the audit log only."""

    status = 400
    code = "passkey_rejected"
    public_message = "That passkey could not be used. Try again, or use another sign-in method."


class ChallengeExpired(PasskeyRejected):
    public_message = "That request has expired. Try again."


class TooManyAttempts(IdpError):
    status = 429
    code = "too_many_attempts"
    public_message = "Too many wrong codes. Wait a few minutes, or use another sign-in method."


class ProofRequired(IdpError):
    """Binding a factor needs a fresh email proof in this browser (issue 4)."""

    status = 403
    code = "email_proof_required"
    public_message = "Confirm it is you by email before adding a sign-in method."


class ReauthRequired(IdpError):
    status = 403
    code = "reauthentication_required"
    public_message = "Confirm it is you with another sign-in method first."


class FactorNotAllowed(IdpError):
    status = 400
    code = "not_allowed"
    public_message = "That change is not possible."
