"""Typed errors, raised deep and rendered in one place (idp/web/errors.py).

``public_message`` is safe to show; anything else about the cause goes to the audit log
or the application log only.
"""

from __future__ import annotations


class IdpError(Exception):
    status = 400
    code = "invalid_request"
    public_message = "The request could not be processed."

    def __init__(self, public_message: str | None = None, *, detail: str | None = None) -> None:
        if public_message is not None:
            self.public_message = public_message
        # For logs and audit only, never for the response.
        self.detail = detail
        super().__init__(detail or self.public_message)


class InvalidInput(IdpError):
    status = 400
    code = "invalid_request"


class InvalidCredentials(IdpError):
    """Same message for unknown account, wrong password and disabled account."""

    status = 401
    code = "invalid_credentials"
    public_message = "That email and password do not match an account."


class EmailNotVerified(IdpError):
    status = 403
    code = "email_not_verified"
    public_message = "Confirm your email address first: use the link we mailed you."


class InvalidToken(IdpError):
    status = 400
    code = "invalid_token"
    public_message = "This link is invalid or has expired."


class NotFound(IdpError):
    status = 404
    code = "not_found"
    public_message = "Not found."
