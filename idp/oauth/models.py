"""Our rows as Authlib sees them: thin adapters implementing Authlib's model mixins.

Authlib's own SQLAlchemy mixins store secrets and tokens in plaintext; these wrap our
tables (hashes only) instead. Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oidc.core import AuthorizationCodeMixin

from idp.clients.service import ClientInfo, ClientService, redirect_uri_matches
from idp.models import AuthorizationCode
from idp.oauth.store import ClaimedRefresh


class Client(ClientMixin):
    """A registered client, from ClientService's read-only snapshot (no database here)."""

    def __init__(self, row: ClientInfo, service: ClientService) -> None:
        self.row = row
        self._service = service

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.row.post_logout_redirect_uris)}

    @property
    def id_token_signed_response_alg(self) -> str:
        return self.row.id_token_alg

    def get_client_id(self) -> str:
        return self.row.id

    def get_default_redirect_uri(self) -> None:
        # OIDC Core §3.1.2.1 and RFC 9700 §2.1: the request must name its redirect URI.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.row.scope.split()
        if not scope:
            return ""
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri_matches(self.row, redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return self._service.verify_secret(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


@dataclass
class Code(AuthorizationCodeMixin):
    row: AuthorizationCode

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.row.acr

    def get_amr(self) -> list[str]:
        return list(self.row.amr)

    @property
    def code_challenge(self) -> str:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str:
        return self.row.code_challenge_method


@dataclass
class Refresh:
    """A consumed refresh token on its way to rotation (Authlib's TokenMixin subset)."""

    row: ClaimedRefresh
    client_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.client_id = self.row.client_id

    def check_client(self, client: Client) -> bool:
        return client.get_client_id() == self.row.client_id

    def get_scope(self) -> str:
        return self.row.scope
