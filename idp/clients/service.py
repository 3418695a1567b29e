"""Relying-party registrations: create, look up, authenticate.

Client secrets are 256 random bits shown once and stored as SHA-256 only. A fast hash
is the right tool here, unlike for passwords: there is no dictionary to try and 2^256
guesses to make, so argon2's cost would buy nothing and would put password-grade work
on every token request (the token endpoint must stay cheap; see issue 3, done-when 4).

Look-ups (``get``, ``by_resource``) answer from an in-process cache of read-only
snapshots (``ClientInfo``), so authenticating a client at the token and introspection
endpoints reads no database. How a change reaches every process:
- in this process, at once: any commit that inserted, changed or deleted an
  ``oauth_clients`` row through SQLAlchemy (ORM objects or ``update(OAuthClient)``)
  empties every client cache of the process (``_forget_on_commit`` below);
- in other workers and instances, within ``CACHE_SECONDS``: a snapshot older than that
  is read again. Disabling a client (or replacing its secret hash) therefore stops it
  everywhere within 5 seconds; its refresh and access-token rows are revoked in the
  database at once by whoever disables it, and introspection refuses the tokens of a
  client it sees disabled.
Only clients that exist are cached: an unknown id is looked up every time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from idp.assurance import ACR_VALUES
from idp.audit import AuditService
from idp.clients import redirect_uris as uri_rules
from idp.context import RequestContext
from idp.crypto.tokens import constant_time_equals, new_secret, sha256_hex
from idp.db import random_id, utcnow
from idp.errors import InvalidInput
from idp.keys.jose import ALGORITHMS
from idp.models import OAuthClient, OAuthClientOrigin

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# RFC 9700 §2.4 and §2.1.2: never the password grant or the implicit flow.
FORBIDDEN_GRANT_TYPES = {"password": "RFC 9700 §2.4", "implicit": "RFC 9700 §2.1.2"}
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
DEFAULT_SCOPE = "openid email"
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]{1,64}$")  # RFC 6749 §3.3 scope-token
MAX_CLIENT_ID = 64
# How stale another process's view of a client may be (a disabled client, a new secret).
CACHE_SECONDS = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class ClientInfo:
    """A read-only copy of one ``oauth_clients`` row, shared by the threads of a process.

    Same attribute names as OAuthClient, so readers do not care which one they hold;
    lists become tuples so that nobody can change the shared copy by accident.
    """

    id: str
    name: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    first_party: bool
    access_token_seconds: int
    id_token_alg: str
    min_acr: str | None
    backchannel_logout_uri: str | None
    backchannel_logout_session_required: bool
    resource_uri: str | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    @classmethod
    def read(cls, db: Session, *where: Any) -> ClientInfo | None:
        """Read one row as it is in the database now (columns only: a row object the
        session already holds could be older than the database)."""
        row = db.execute(select(*(getattr(OAuthClient, f.name) for f in dataclasses.fields(cls))).where(*where)).first()
        if row is None:
            return None
        return cls(*(tuple(v) if isinstance(v, list) else v for v in row))

    @property
    def public(self) -> bool:
        return self.secret_hash is None


class ClientCache:
    """Snapshots by client id and by RFC 8707 resource URI, each kept ``ttl`` seconds."""

    def __init__(self, *, ttl: float = CACHE_SECONDS, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.ttl = ttl
        self.clock = clock
        self._by_id: dict[str, tuple[float, ClientInfo]] = {}
        self._by_resource: dict[str, tuple[float, ClientInfo]] = {}
        _ALL_CACHES.add(self)

    def get(self, client_id: str) -> ClientInfo | None:
        return self._fresh(self._by_id.get(client_id))

    def by_resource(self, uri: str) -> ClientInfo | None:
        return self._fresh(self._by_resource.get(uri))

    def put(self, info: ClientInfo) -> ClientInfo:
        entry = (self.clock() + self.ttl, info)
        self._by_id[info.id] = entry
        if info.resource_uri is not None:
            self._by_resource[info.resource_uri] = entry
        return info

    def clear(self) -> None:
        # Rebinding, not clear(): a reader in another thread keeps a consistent dict.
        self._by_id, self._by_resource = {}, {}

    def _fresh(self, entry: tuple[float, ClientInfo] | None) -> ClientInfo | None:
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]


_ALL_CACHES: weakref.WeakSet[ClientCache] = weakref.WeakSet()
_CACHES_BY_ENGINE: weakref.WeakKeyDictionary[Engine, ClientCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(db: Session) -> ClientCache:
    """One cache per engine, i.e. per application (tests build many, each its own database)."""
    engine = db.get_bind()
    cache = _CACHES_BY_ENGINE.get(engine)  # type: ignore[arg-type]
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES_BY_ENGINE.setdefault(engine, ClientCache())  # type: ignore[arg-type]
    return cache


def forget_all_clients() -> None:
    for cache in list(_ALL_CACHES):
        cache.clear()


_CHANGED = "idp.clients.changed"


@event.listens_for(Session, "after_flush")
def _note_client_rows(session: Session, _flush: UOWTransaction) -> None:
    # Still the pre-flush view here: new, dirty and deleted list what was just written.
    if any(isinstance(o, OAuthClient) for group in (session.new, session.dirty, session.deleted) for o in group):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_client_statements(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is not None and (
        state.bind_mapper.class_ is OAuthClient
    ):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget_all_clients()


@event.listens_for(Session, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop(_CHANGED, None)


class ClientService:
    def __init__(self, *, db: Session, audit: AuditService) -> None:
        self.db = db
        self.audit = audit
        self.cache = cache_for(db)

    def create(
        self,
        *,
        name: str,
        redirect_uris: Iterable[str] = (),
        public: bool = False,
        first_party: bool = False,
        grant_types: Iterable[str] = (),
        scope: str | None = None,
        post_logout_redirect_uris: Iterable[str] = (),
        access_token_seconds: int = 600,
        id_token_alg: str = "ES256",
        min_acr: str | None = None,
        client_id: str | None = None,
        backchannel_logout_uri: str | None = None,
        resource_uri: str | None = None,
        ctx: RequestContext | None = None,
    ) -> tuple[OAuthClient, str | None]:
        """Register a client. Returns it and its secret (None for public clients): the
        secret is shown this once and only its hash is kept."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("the client name must be 1 to 200 characters")
        grants = list(dict.fromkeys(grant_types)) or list(DEFAULT_GRANT_TYPES)
        for grant in grants:
            if grant in FORBIDDEN_GRANT_TYPES:
                raise InvalidInput(f"grant type {grant!r} is not offered ({FORBIDDEN_GRANT_TYPES[grant]})")
            if grant not in GRANT_TYPES:
                raise InvalidInput(f"unknown grant type {grant!r}; choose from {', '.join(GRANT_TYPES)}")
        if public and "client_credentials" in grants:
            raise InvalidInput("a public client cannot use client_credentials: it has no secret")
        uris = [redirect_uris_validate(u, public=public) for u in dict.fromkeys(redirect_uris)]
        if "authorization_code" in grants and not uris:
            raise InvalidInput("the authorization_code grant needs at least one --redirect-uri")
        logout_uris = [redirect_uris_validate(u, public=public) for u in dict.fromkeys(post_logout_redirect_uris)]
        scopes = (scope or DEFAULT_SCOPE).split()
        if not scopes or any(not _SCOPE_TOKEN.match(s) for s in scopes):
            raise InvalidInput("scope must be space-separated scope tokens (RFC 6749 §3.3)")
        if not 30 <= access_token_seconds <= 3600:
            raise InvalidInput("access-token lifetime must be between 30 and 3600 seconds")
        if id_token_alg not in ALGORITHMS:
            raise InvalidInput(f"ID-token algorithm must be one of {', '.join(ALGORITHMS)}")
        if min_acr is not None and min_acr not in ACR_VALUES:
            raise InvalidInput(f"minimum acr must be one of {', '.join(ACR_VALUES)}")
        if backchannel_logout_uri is not None:
            backchannel_logout_uri = server_uri_validate(backchannel_logout_uri, what="back-channel logout URI")
        if resource_uri is not None:
            if public:
                raise InvalidInput("a resource server must be a confidential client: it authenticates to introspect")
            resource_uri = server_uri_validate(resource_uri, what="resource URI")
            if self.by_resource(resource_uri) is not None:
                raise InvalidInput(f"resource URI {resource_uri!r} is already registered by another client")
        if client_id is not None and (not re.fullmatch(r"[A-Za-z0-9._~-]{1,64}", client_id) or self.get(client_id)):
            raise InvalidInput("that client id is malformed or taken")

        secret = None if public else new_secret()
        client = OAuthClient(
            id=client_id or random_id(),
            name=name,
            secret_hash=None if secret is None else sha256_hex(secret),
            redirect_uris=uris,
            post_logout_redirect_uris=logout_uris,
            grant_types=grants,
            scope=" ".join(dict.fromkeys(scopes)),
            first_party=first_party,
            access_token_seconds=access_token_seconds,
            id_token_alg=id_token_alg,
            min_acr=min_acr,
            backchannel_logout_uri=backchannel_logout_uri,
            backchannel_logout_session_required=True,
            resource_uri=resource_uri,
            created_at=utcnow(),
        )
        self.db.add(client)
        self.db.flush()
        for origin in dict.fromkeys(o for o in map(uri_rules.origin_of, uris + logout_uris) if o):
            self.db.add(OAuthClientOrigin(client_id=client.id, origin=origin))
        self.db.flush()
        self.audit.record(
            "client.created", ctx=ctx or RequestContext.system(), client_id=client.id, public=public,
            first_party=first_party, grant_types=grants,
        )
        return client, secret

    def get(self, client_id: object) -> ClientInfo | None:
        """An enabled client, or None (also for ids that cannot be ours)."""
        if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_CLIENT_ID:
            return None
        return self._enabled(self.cache.get(client_id), OAuthClient.id == client_id)

    def by_resource(self, resource_uri: object) -> ClientInfo | None:
        """The enabled client that serves ``resource_uri`` (RFC 8707), or None."""
        if not isinstance(resource_uri, str) or not resource_uri or len(resource_uri) > 2048:
            return None
        return self._enabled(self.cache.by_resource(resource_uri), OAuthClient.resource_uri == resource_uri)

    def _enabled(self, cached: ClientInfo | None, where: Any) -> ClientInfo | None:
        """The cached snapshot, else the row read now (and cached); None when disabled."""
        client = cached
        if client is None:
            client = ClientInfo.read(self.db, where)
            if client is None:
                return None  # unknown ids are not cached
            self.cache.put(client)
        return None if client.disabled_at is not None else client

    def verify_secret(self, client: ClientInfo | OAuthClient, secret: object) -> bool:
        if client.secret_hash is None or not isinstance(secret, str) or not secret or len(secret) > 512:
            return False
        return constant_time_equals(sha256_hex(secret), client.secret_hash)

    def origin_allowed(self, origin: str, *, client_id: str | None = None) -> bool:
        """CORS: is ``origin`` registered by this client (or, without one, by any client)?"""
        if not origin or len(origin) > 300:
            return False
        stmt = select(OAuthClientOrigin.id).where(OAuthClientOrigin.origin == origin)
        if client_id is not None:
            stmt = stmt.where(OAuthClientOrigin.client_id == client_id)
        return self.db.scalar(stmt.limit(1)) is not None

    def by_ids(self, client_ids: Iterable[str]) -> dict[str, OAuthClient]:
        ids = list(set(client_ids))
        if not ids:
            return {}
        return {c.id: c for c in self.db.scalars(select(OAuthClient).where(OAuthClient.id.in_(ids)))}


def redirect_uris_validate(uri: str, *, public: bool) -> str:
    return uri_rules.validate_for_registration(uri, public=public)


def server_uri_validate(uri: str, *, what: str) -> str:
    """An absolute URI of a server we call or name as an audience: https, or http on
    loopback; no fragment (OIDC BCL 1.0 §2.2, RFC 8707 §2)."""
    checked = uri_rules.validate_for_registration(uri, public=False)
    if urlsplit(checked).scheme not in ("https", "http"):
        raise InvalidInput(f"{what} {uri!r} must be an https URL (http only on loopback)")
    return checked


def redirect_uri_matches(client: ClientInfo | OAuthClient, requested: str) -> bool:
    return uri_rules.matches(client.redirect_uris, requested, public=client.public)
