"""Admin API, clients (scope admin:clients): list, get, create (the secret is in the
answer once, and only its hash is stored), disable. Mirrors ``idp clients create``."""

from __future__ import annotations

from flask import Response

from idp.admin.api import bp
from idp.admin.bearer import Caller, require
from idp.admin.client_admin import ClientAdmin, describe
from idp.admin.inputs import flag, integer, json_object, path_id, text, text_list
from idp.admin.problems import ApiError, json_response
from idp.models import OAuthClient
from idp.web.requests import services

SCOPE = "admin:clients"
CREATE_FIELDS = (
    "name", "redirect_uris", "post_logout_redirect_uris", "public", "first_party", "grant_types", "scope",
    "access_token_seconds", "id_token_alg", "min_acr", "backchannel_logout_uri", "resource_uri",
)


def _admin() -> ClientAdmin:
    s = services()
    return ClientAdmin(db=s.db, audit=s.audit)


def _client(client_id: str) -> OAuthClient:
    checked = path_id(client_id)
    client = _admin().find(checked) if checked is not None else None
    if client is None:
        raise ApiError(404, "not_found", "No such client.")
    return client


@bp.get("/clients")
@require(SCOPE)
def clients_list(*, caller: Caller) -> Response:
    return json_response({"clients": [describe(c) for c in _admin().all()]})


@bp.get("/clients/<client_id>")
@require(SCOPE)
def client_get(client_id: str, *, caller: Caller) -> Response:
    return json_response(describe(_client(client_id)))


@bp.post("/clients")
@require(SCOPE)
def client_create(*, caller: Caller) -> Response:
    body = json_object(CREATE_FIELDS, required=True)
    s = services()
    client, secret = s.clients.create(
        name=text(body, "name", max_length=200),
        redirect_uris=text_list(body, "redirect_uris"),
        post_logout_redirect_uris=text_list(body, "post_logout_redirect_uris"),
        public=flag(body, "public"),
        first_party=flag(body, "first_party"),
        grant_types=text_list(body, "grant_types", max_length=64),
        scope=text(body, "scope", max_length=1000, default=None, nullable=True),
        access_token_seconds=integer(body, "access_token_seconds", default=600, minimum=30, maximum=3600),
        id_token_alg=text(body, "id_token_alg", max_length=16, default="ES256"),
        min_acr=text(body, "min_acr", max_length=64, default=None, nullable=True),
        backchannel_logout_uri=text(body, "backchannel_logout_uri", default=None, nullable=True),
        resource_uri=text(body, "resource_uri", default=None, nullable=True),
        ctx=caller.ctx,
    )
    s.audit.record("admin.client_created", ctx=caller.ctx, actor=caller.id, client_id=client.id)
    s.db.commit()
    result = describe(client)
    if secret is not None:
        result["client_secret"] = secret  # shown this once; only its hash is kept
    response = json_response(result, 201)
    response.headers["Location"] = f"/admin/clients/{client.id}"
    return response


@bp.post("/clients/<client_id>/disable")
@require(SCOPE)
def client_disable(client_id: str, *, caller: Caller) -> Response:
    json_object(())
    client = _client(client_id)
    result = _admin().disable(client, actor=caller.id, ctx=caller.ctx)
    services().db.commit()
    return json_response(result)
