"""PasskeyService against a software authenticator: each attack is rejected (issue 4, Done 2)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.mfa.errors import ChallengeExpired, PasskeyRejected
from idp.mfa.webauthn_adapter import SignCountRegressed
from idp.models import AuditEvent, WebAuthnChallenge
from tests.softauthn import SoftAuthenticator, b64url, unb64url
from tests.unit.mfa.conftest import CTX

ORIGIN = "http://localhost"  # the test settings' issuer
RP_ID = "localhost"


def register(services, user, authenticator):  # type: ignore[no-untyped-def]
    options, challenge_id = services.passkeys.registration_options(user)
    record = services.passkeys.register(user, challenge_id, authenticator.create(options), name="key", ctx=CTX)
    services.db.commit()
    return record


def sign_in(services, authenticator, **tamper):  # type: ignore[no-untyped-def]
    options, challenge_id = services.passkeys.authentication_options(None)
    return services.passkeys.authenticate(
        challenge_id, authenticator.get(options, **tamper), expected_user_id=None, ctx=CTX
    )


def events(services, name):  # type: ignore[no-untyped-def]
    return list(services.db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_registration_and_usernameless_sign_in_work(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    record = register(services, user, authenticator)
    options, _ = services.passkeys.registration_options(user)
    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    # The user handle is random, not the account id or email.
    assert user.id not in options["user"]["id"] and options["user"]["id"] != record.user_id
    use = sign_in(services, authenticator)
    assert use.user_id == user.id and use.user_verified


def test_registration_for_another_rp_id_is_rejected(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    options, challenge_id = services.passkeys.registration_options(user)
    with pytest.raises(PasskeyRejected):
        services.passkeys.register(user, challenge_id, authenticator.create(options, rp_id="evil.example"),
                                   name="k", ctx=CTX)


def test_registration_from_another_origin_is_rejected(services, user):
    authenticator = SoftAuthenticator(origin="http://localhost.evil.example", rp_id=RP_ID)
    options, challenge_id = services.passkeys.registration_options(user)
    with pytest.raises(PasskeyRejected):
        services.passkeys.register(user, challenge_id, authenticator.create(options), name="k", ctx=CTX)


def test_assertion_for_a_phishing_rp_id_is_rejected(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    with pytest.raises(PasskeyRejected):
        sign_in(services, authenticator, rp_id="login-example.evil")


def test_assertion_relayed_from_a_phishing_origin_is_rejected(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    with pytest.raises(PasskeyRejected):
        sign_in(services, authenticator, origin="https://idp-login.evil.example")


def test_replayed_assertion_finds_its_challenge_gone(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    options, challenge_id = services.passkeys.authentication_options(None)
    assertion = authenticator.get(options)
    services.passkeys.authenticate(challenge_id, assertion, expected_user_id=None, ctx=CTX)
    services.db.commit()
    with pytest.raises(ChallengeExpired):
        services.passkeys.authenticate(challenge_id, assertion, expected_user_id=None, ctx=CTX)


def test_assertion_over_a_stale_challenge_is_rejected(services, user):
    """A response signed over an old challenge, sent with a fresh challenge id."""
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    old_options, old_id = services.passkeys.authentication_options(None)
    services.passkeys.authenticate(old_id, authenticator.get(old_options), expected_user_id=None, ctx=CTX)
    _options, new_id = services.passkeys.authentication_options(None)
    with pytest.raises(PasskeyRejected):
        services.passkeys.authenticate(new_id, authenticator.get(old_options), expected_user_id=None, ctx=CTX)


def test_failed_ceremony_still_consumes_its_challenge(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    options, challenge_id = services.passkeys.authentication_options(None)
    with pytest.raises(PasskeyRejected):
        sign_in_with = authenticator.get(options, origin="https://evil.example")
        services.passkeys.authenticate(challenge_id, sign_in_with, expected_user_id=None, ctx=CTX)
    assert services.db.get(WebAuthnChallenge, challenge_id) is None


def test_sign_count_regression_is_rejected_and_audited_as_possible_clone(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    sign_in(services, authenticator, sign_count=10)
    services.db.commit()
    with pytest.raises(SignCountRegressed):
        sign_in(services, authenticator, sign_count=10)  # not above 10: a clone's counter
    with pytest.raises(SignCountRegressed):
        sign_in(services, authenticator, sign_count=3)
    assert len(events(services, "passkey.sign_count_regressed")) == 2
    assert sign_in(services, authenticator, sign_count=11).user_id == user.id


def test_removed_credential_is_rejected(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    record = register(services, user, authenticator)
    services.passkeys.remove(record)
    services.db.commit()
    with pytest.raises(PasskeyRejected):
        sign_in(services, authenticator)
    assert events(services, "passkey.failed")[-1].details["reason"] == "unknown credential"


def test_credential_is_looked_up_by_id_and_must_match_the_user_handle(services, user, make_user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    other = services.accounts.get(make_user("other@example.com").id)
    services.passkeys.user_handle(other)
    services.db.commit()
    # Claiming to be the other user with the first user's key fails.
    authenticator.credentials[0].user_handle = unb64url(services.passkeys.user_handle(other))
    with pytest.raises(PasskeyRejected):
        sign_in(services, authenticator)


def test_second_factor_refuses_another_users_credential(services, user, make_user):
    attacker = services.accounts.get(make_user("attacker@example.com").id)
    attacker_key = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, attacker, attacker_key)
    register(services, user, SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID))
    options, challenge_id = services.passkeys.authentication_options(user)
    with pytest.raises(PasskeyRejected):
        services.passkeys.authenticate(
            challenge_id, attacker_key.get(options, credential=attacker_key.credentials[0]),
            expected_user_id=user.id, ctx=CTX,
        )


def test_usernameless_sign_in_needs_user_verification(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID, user_verified=False)
    register(services, user, authenticator)
    with pytest.raises(PasskeyRejected):
        sign_in(services, authenticator)
    # ...but the same key works as a second factor (possession next to the password).
    options, challenge_id = services.passkeys.authentication_options(user)
    use = services.passkeys.authenticate(challenge_id, authenticator.get(options), expected_user_id=user.id, ctx=CTX)
    assert not use.user_verified


def test_the_same_authenticator_cannot_be_registered_twice(services, user):
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    register(services, user, authenticator)
    existing = authenticator.credentials[0].credential_id
    options, challenge_id = services.passkeys.registration_options(user)
    assert [c["id"] for c in options["excludeCredentials"]] == [b64url(existing)]
    # A scripted client ignoring excludeCredentials sends the same credential id again.
    again = authenticator.create(options, credential_id=existing)
    with pytest.raises(PasskeyRejected):
        services.passkeys.register(user, challenge_id, again, name="k", ctx=CTX)


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"id": "x", "rawId": "y", "type": "public-key", "response": {}},
        {"id": "!!!", "rawId": "!!!", "type": "public-key",
         "response": {"clientDataJSON": "%%%", "authenticatorData": "$$$", "signature": "@@"}},
        {"id": "AA", "rawId": "AA", "type": "public-key",
         "response": {"clientDataJSON": "AA", "authenticatorData": "AA", "signature": "AA", "userHandle": 5}},
        {"id": ["AA"], "rawId": {"a": 1}, "type": None, "response": []},
    ],
)
def test_malformed_assertions_are_rejected_not_crashed(services, user, credential):
    _options, challenge_id = services.passkeys.authentication_options(None)
    with pytest.raises(PasskeyRejected):
        services.passkeys.authenticate(challenge_id, credential, expected_user_id=None, ctx=CTX)
