"""All tables. Importing this package registers every model on ``Base.metadata``."""

from idp.models.audit import AuditEvent
from idp.models.force_reset import ForceResetRun
from idp.models.oauth import (
    AuthorizationCode,
    Consent,
    IssuedAccessToken,
    OAuthClient,
    OAuthClientOrigin,
    RefreshToken,
    SigningKey,
)
from idp.models.mfa import (
    EnrolmentProof,
    MfaSessionState,
    RecoveryCode,
    TotpAuthenticator,
    WebAuthnChallenge,
    WebAuthnCredential,
    WebAuthnUserHandle,
)
from idp.models.sessions import SsoSession
from idp.models.users import EmailToken, User

__all__ = [
    "AuditEvent",
    "AuthorizationCode",
    "Consent",
    "EmailToken",
    "ForceResetRun",
    "IssuedAccessToken",
    "OAuthClient",
    "OAuthClientOrigin",
    "RefreshToken",
    "SigningKey",
    "SsoSession",
    "User",
]
__all__ += [
    "EnrolmentProof",
    "MfaSessionState",
    "RecoveryCode",
    "TotpAuthenticator",
    "WebAuthnChallenge",
    "WebAuthnCredential",
    "WebAuthnUserHandle",
]
