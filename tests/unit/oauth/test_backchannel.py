"""Back-channel logout, the transaction side: who is told, with what, and only after a commit."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from idp.context import RequestContext
from idp.db import utcnow
from idp.keys import jose
from idp.keys.jose import InvalidJwt
from idp.models import AuditEvent
from idp.oauth.backchannel import EVENT, LOGOUT_TOKEN_SECONDS, BackchannelLogout, Delivery

CTX = RequestContext(ip="127.0.0.1")


class Recorder:
    """Stands in for the delivery threads: what would have been POSTed, and when."""

    def __init__(self) -> None:
        self.submitted: list[Delivery] = []

    def submit(self, deliveries: list[Delivery]) -> None:
        self.submitted.extend(deliveries)

    def count(self, _outcome: str) -> None:
        pass


@pytest.fixture
def world(app, make_user):
    registry = app.extensions["idp"]
    db = registry.sessionmaker()
    services = registry.services(db)
    recorder = Recorder()
    services.backchannel = BackchannelLogout(  # the registry's, with the recorder as dispatcher
        db=db, keys=services.signing_keys, audit=services.audit, issuer=registry.settings.issuer,
        timeout_seconds=2.0, dispatcher=recorder,  # type: ignore[arg-type]
    )
    user = make_user()
    user = services.accounts.get(user.id)
    session, _ = services.sessions.start(user, amr=["pwd"], ctx=CTX)
    other, _ = services.sessions.start(user, amr=["pwd"], ctx=CTX)

    def client(name: str, *, uri: bool = True, disabled: bool = False):
        row, _secret = services.clients.create(
            name=name, redirect_uris=["https://rp.example/cb"],
            backchannel_logout_uri=f"https://{name.lower()}.example/bcl" if uri else None,
        )
        if disabled:
            row.disabled_at = utcnow()
        return row

    clients = {name: client(name) for name in ("Code", "Refresh", "Access", "Other")}
    clients["NoUri"] = client("NoUri", uri=False)
    clients["Disabled"] = client("Disabled", disabled=True)
    tokens = services.oauth_tokens
    grant = dict(scope="openid", auth_time=utcnow(), amr=["pwd"], acr="urn:idp:acr:pwd")

    def code(client_row, session_id):
        tokens.save_code(
            f"code-{client_row.id}-{session_id}", client_id=client_row.id, user_id=user.id, session_id=session_id,
            redirect_uri="https://rp.example/cb", nonce="n", code_challenge="c" * 43, code_challenge_method="S256",
            **grant,
        )

    code(clients["Code"], session.id)
    code(clients["NoUri"], session.id)
    code(clients["Disabled"], session.id)
    code(clients["Other"], other.id)  # another session of the same person
    tokens.issue_refresh(client_id=clients["Refresh"].id, user_id=user.id, session_id=session.id, code_id=None,
                         family_id=None, **grant)
    tokens.record_access_token(
        jti="jti-access", client_id=clients["Access"].id, user_id=user.id, session_id=session.id, code_id=None,
        family_id=None, issued_at=utcnow(), expires_at=utcnow() + dt.timedelta(minutes=10),
    )
    db.commit()
    yield services, recorder, user, session, other, clients
    db.close()


def test_every_client_the_session_gave_a_code_or_token_to_is_told_after_the_commit(world):
    services, recorder, user, session, _other, clients = world
    services.sessions.end(session, reason="signed_out", ctx=CTX)
    assert recorder.submitted == []  # nothing leaves before the commit
    services.db.commit()

    told = {d.client_id for d in recorder.submitted}
    assert told == {clients["Code"].id, clients["Refresh"].id, clients["Access"].id}
    assert {d.session_id for d in recorder.submitted} == {session.id}
    assert {d.uri for d in recorder.submitted} == {"https://code.example/bcl", "https://refresh.example/bcl",
                                                   "https://access.example/bcl"}
    assert all(d.timeout == 2.0 for d in recorder.submitted)


def test_a_rolled_back_session_end_tells_nobody(world):
    services, recorder, user, session, _other, _clients = world
    services.sessions.end_all_for_user(user.id, reason="test", ctx=CTX)
    services.db.rollback()
    services.db.commit()  # a later, empty transaction does not pick up the dropped ones
    assert recorder.submitted == []


def test_a_session_end_never_committed_tells_nobody(world):
    services, recorder, user, _session, _other, _clients = world
    services.sessions.end_all_for_user(user.id, reason="test", ctx=CTX)
    services.db.close()  # e.g. a request that failed before its commit
    services.db.commit()
    assert recorder.submitted == []


def test_ending_every_session_tells_each_client_about_its_own_session_once(world):
    services, recorder, user, session, other, clients = world
    services.sessions.end_all_for_user(user.id, reason="forced_reset", ctx=None)
    services.backchannel.sessions_ended([session.id, other.id])  # told twice in one transaction
    services.db.commit()
    pairs = sorted((d.client_id, d.session_id) for d in recorder.submitted)
    assert pairs == sorted([(clients["Code"].id, session.id), (clients["Refresh"].id, session.id),
                            (clients["Access"].id, session.id), (clients["Other"].id, other.id)])


def test_logout_token_is_what_oidc_bcl_2_4_says_and_carries_no_nonce(world):
    services, recorder, user, session, _other, clients = world
    services.sessions.end(session, reason="signed_out", ctx=CTX)
    services.db.commit()
    delivery = next(d for d in recorder.submitted if d.client_id == clients["Code"].id)

    header = jose.unverified_header(delivery.logout_token)
    signer = services.signing_keys.ring().signer("ES256")
    assert header == {"alg": "ES256", "kid": signer.kid, "typ": "logout+jwt"}
    claims = services.token_minter.verify(delivery.logout_token, typ="logout+jwt")
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "events", "sub", "sid"}
    assert claims["iss"] == services.registry.settings.issuer
    assert claims["aud"] == clients["Code"].id
    assert claims["sub"] == user.id and claims["sid"] == session.id
    assert claims["events"] == {EVENT: {}}
    assert claims["exp"] - claims["iat"] == LOGOUT_TOKEN_SECONDS <= 300
    assert claims["jti"] == delivery.jti
    assert len({d.jti for d in recorder.submitted}) == len(recorder.submitted)  # one jti per token


def test_a_logout_token_cannot_pass_as_an_access_token(world):
    services, recorder, _user, session, _other, _clients = world
    services.sessions.end(session, reason="signed_out", ctx=CTX)
    services.db.commit()
    with pytest.raises(InvalidJwt):
        services.token_minter.verify(recorder.submitted[0].logout_token)  # typ at+jwt expected


def test_the_audit_log_names_who_was_told_but_not_the_token(world):
    services, recorder, user, session, _other, clients = world
    services.sessions.end(session, reason="signed_out", ctx=CTX)
    services.db.commit()
    events = list(services.db.scalars(select(AuditEvent).where(AuditEvent.event == "backchannel_logout.queued")))
    assert {e.details["client_id"] for e in events} == {d.client_id for d in recorder.submitted}
    assert all(e.user_id == user.id and e.session_id == session.id for e in events)
    text = json.dumps([e.details for e in events])
    assert not any(d.logout_token in text or d.logout_token.split(".")[2] in text for d in recorder.submitted)


def test_a_session_that_led_to_nothing_tells_nobody_and_writes_nothing(world, make_user):
    services, recorder, _user, _session, _other, _clients = world
    someone = services.accounts.get(make_user("someone@example.com").id)
    lonely, _ = services.sessions.start(someone, amr=["pwd"], ctx=CTX)
    services.db.commit()
    services.sessions.end(lonely, reason="signed_out", ctx=CTX)
    services.db.commit()
    assert recorder.submitted == []
    assert services.db.scalar(select(AuditEvent).where(AuditEvent.event == "backchannel_logout.queued")) is None
