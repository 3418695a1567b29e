"""Grants as thin Authlib subclasses: storage hooks only (STYLE 4).

- authorization_code (RFC 6749 §4.1) with PKCE S256 for every client (RFC 7636,
  RFC 9700 §2.1.1) and OpenID Connect (Core §3.1) as registered extensions;
- refresh_token (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2);
- client_credentials (RFC 6749 §4.4) for service callers.
No implicit and no password grant are registered (RFC 9700 §2.1.2, §2.4).

Error descriptions must be printable ASCII without quotes or backslashes
(RFC 6749 §5.2), hence no section signs below.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants

from flask import request as flask_request

from idp.assurance import baseline_acr, satisfies
from idp.oauth import resources
from idp.oauth.models import Client, Code, Refresh
from idp.oauth.store import ReplayDetected, scope_set
from idp.oauth.tokens import Subject
from idp.web.requests import request_context, services, settings

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
ALL_METHODS = [*SECRET_METHODS, "none"]
MAX_NONCE_LENGTH = 255


class S256CodeChallenge(CodeChallenge):
    """RFC 7636, tightened by RFC 9700 §2.1.1: required for every client, S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            # RFC 7636 4.3: a missing method means plain, which we do not accept either.
            raise InvalidRequestError("code_challenge_method must be S256; plain is not accepted.")
        super().validate_code_challenge(grant, redirect_uri)


class _IssuesOurTokens:
    """Token issuance shared by every grant: an RFC 9068 JWT access token, and for user
    grants an opaque rotating refresh token (hash stored). An access token issued to a
    person is recorded by ``jti`` (revocable by session, user, client, family); one
    issued to a client is not (idp/oauth/store.py: only a revocation writes its row)."""

    request: Any

    def generate_token(
        self,
        user: Subject | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        s = services()
        client: Client = self.request.client
        scope = scope or ""
        code: Code | None = self.request.authorization_code
        previous: Refresh | None = self.request.refresh_token
        requested = flask_request.form.getlist("resource")
        if code is not None or previous is not None:
            granted = list(code.row.resource if code is not None else previous.row.resource)  # type: ignore[union-attr]
            audience = resources.narrowed(requested, granted)
        else:  # client_credentials: the service names the API it calls
            granted = audience = requested_resources(requested) if requested else []
        minted = s.token_minter.access_token(client=client.row, subject=user, scope=scope, resource=audience)
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": minted.token,
            "expires_in": minted.expires_in,
            "scope": scope,
        }
        if user is None:
            return token
        code_id = code.row.id if code else (previous.row.code_id if previous else None)
        family_id = previous.row.family_id if previous else None
        if include_refresh_token:
            row, secret = s.oauth_tokens.issue_refresh(
                client_id=client.id,
                user_id=user.id,
                session_id=user.session_id,
                code_id=code_id,
                family_id=family_id,
                scope=scope,
                auth_time=user.auth_time,
                amr=user.amr,
                acr=user.acr,
                expires_at=previous.row.expires_at if previous else None,
                resource=granted,  # the family keeps the whole grant, however narrowed now
            )
            family_id = row.family_id
            token["refresh_token"] = secret
        s.oauth_tokens.record_access_token(
            jti=minted.jti,
            client_id=client.id,
            user_id=user.id,
            session_id=user.session_id,
            code_id=code_id,
            family_id=family_id,
            issued_at=minted.issued_at,
            expires_at=minted.expires_at,
        )
        return token

    def save_token(self, token: dict[str, Any]) -> None:
        """Stored while generating (above): the jti and the refresh-token hash."""


def requested_resources(values: list[str]) -> list[str]:
    """RFC 8707 resources from a request, each a registered API; InvalidTargetError else."""
    admin = settings().admin_audience
    clients = services().clients
    return resources.parse(values, is_known=lambda uri: uri == admin or clients.by_resource(uri) is not None)


def _subject(user_id: str, *, session_id: str | None, auth_time: Any, amr: list[str], acr: str) -> Subject | None:
    user = services().accounts.get(user_id)
    if user is None or not user.active:
        return None
    return Subject(user=user, session_id=session_id, auth_time=auth_time, amr=list(amr), acr=acr)


class AuthorizationCodeGrant(_IssuesOurTokens, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        subject: Subject = request.user
        data = request.payload.data
        services().oauth_tokens.save_code(
            code,
            client_id=request.client.id,
            user_id=subject.id,
            session_id=subject.session_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            nonce=data.get("nonce") or None,
            code_challenge=data["code_challenge"],
            code_challenge_method="S256",
            auth_time=subject.auth_time,
            amr=subject.amr,
            acr=subject.acr,
            resource=requested_resources(flask_request.args.getlist("resource")),
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        # Consumed here, before anything else is checked: one attempt per code.
        try:
            row = services().oauth_tokens.redeem_code(code, client_id=client.id, ctx=request_context())
        except ReplayDetected:
            raise InvalidGrantError("This code was already used; the tokens issued for it are revoked.") from None
        return Code(row) if row is not None else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        """Nothing to do: the code was consumed atomically when it was looked up."""

    def authenticate_user(self, authorization_code: Code) -> Subject | None:
        row = authorization_code.row
        return _subject(row.user_id, session_id=row.session_id, auth_time=row.auth_time, amr=row.amr, acr=row.acr)


class OpenIDCode(oidc_grants.OpenIDCode):
    """OIDC Core §3.1: the ID token, with nonce required whenever openid is asked for."""

    def __init__(self) -> None:
        super().__init__(require_nonce=True)

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        if len(nonce) > MAX_NONCE_LENGTH:
            raise InvalidRequestError("nonce is too long.")
        return services().oauth_tokens.nonce_used(request.payload.client_id, nonce)

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        code: Code = request.authorization_code
        return services().token_minter.id_token(
            client=request.client.row,
            subject=request.user,
            scope=token["scope"],
            nonce=code.get_nonce(),
            access_token=token.get("access_token"),
        )


class RefreshTokenGrant(_IssuesOurTokens, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every use returns a new one

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        token = self.authenticate_refresh_token(value)  # consumed here, in one statement
        if token is None:
            raise InvalidGrantError()
        # The sign-in behind the grant must still be strong enough: the MFA policy may
        # have become "required", or the client's minimum acr may have been raised, since
        # it was issued. A refresh must not keep minting tokens a new sign-in could not
        # get: the family ends and the person signs in again (with the factor).
        need = baseline_acr(settings().mfa_policy)
        if client.row.min_acr and not satisfies(need, client.row.min_acr):
            need = client.row.min_acr
        if not satisfies(token.row.acr, need):
            services().oauth_tokens.revoke_family(token.row.family_id)
            raise InvalidGrantError("The sign-in behind this grant is weaker than now required; sign in again.")
        try:
            requested = self.request.payload.scope
            if requested and not scope_set(requested) <= scope_set(token.row.scope):
                raise InvalidScopeError()
            resources.narrowed(flask_request.form.getlist("resource"), token.row.resource)
        except OAuth2Error:
            # A request refused for its scope or resource must not burn the token: undo
            # the claim (nothing else has been written in this transaction yet).
            services().db.rollback()
            raise
        self.request.refresh_token = token

    def authenticate_refresh_token(self, refresh_token: str) -> Refresh | None:
        try:
            row = services().oauth_tokens.use_refresh(
                refresh_token, client_id=self.request.client.id, ctx=request_context()
            )
        except ReplayDetected:
            raise InvalidGrantError("This refresh token was already used; its whole family is revoked.") from None
        return Refresh(row) if row is not None else None

    def authenticate_user(self, refresh_token: Refresh) -> Subject:
        # The claim only matched a token whose account is active: no need to load it.
        row = refresh_token.row
        return Subject(user=None, user_id=row.user_id, session_id=row.session_id, auth_time=row.auth_time,
                       amr=list(row.amr), acr=row.acr)

    def revoke_old_credential(self, refresh_token: Refresh) -> None:
        """Nothing to do: the old token was consumed atomically when it was presented."""


class ClientCredentialsGrant(_IssuesOurTokens, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def validate_requested_scope(self) -> None:
        requested = self.request.payload.scope
        if requested is not None and (
            not requested.strip() or not scope_set(requested) <= scope_set(self.request.client.row.scope)
        ):
            raise InvalidScopeError()
