"""The only module importing py_webauthn (STYLE 6): WebAuthn Level 3 parameters fixed here.

- RP ID: the issuer's host; expected origin: the issuer itself (scheme, host, port).
- Discoverable credentials required (usernameless sign-in), user verification
  preferred (a security key without a PIN still works as a second factor), attestation
  ``none`` (we make no claims about authenticator models, so we ask for no evidence).
- ES256 and EdDSA, then RS256 for older Windows Hello keys (py_webauthn's defaults).

Every failure inside the library, whatever its type, becomes ``PasskeyRejected`` with the
library's reason kept for the audit log only: the input is attacker-controlled and a
parse error in it is a rejection, never a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.generate_user_handle import generate_user_handle
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.mfa.errors import PasskeyRejected

TIMEOUT_MS = 5 * 60 * 1000  # WebAuthn L3 §5.4: the ceremony's own timeout


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    credential_id: str  # base64url
    public_key: bytes  # COSE_Key
    sign_count: int
    aaguid: str
    backed_up: bool
    user_verified: bool


@dataclass(frozen=True, slots=True)
class AssertionIds:
    """Who an assertion claims to be, read before anything is verified (for the lookup)."""

    credential_id: str  # base64url
    user_handle: str | None  # base64url


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    sign_count: int
    user_verified: bool
    backed_up: bool


class SignCountRegressed(PasskeyRejected):
    """WebAuthn L3 §6.1.1: a counter that did not move forward may mean a cloned key."""


def new_user_handle() -> str:
    return bytes_to_base64url(generate_user_handle())


def _descriptors(credential_ids: list[str]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in credential_ids]


def registration_options(
    *, rp_id: str, rp_name: str, user_handle: str, user_name: str, exclude: list[str]
) -> tuple[dict[str, Any], bytes]:
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        user_id=base64url_to_bytes(user_handle),
        user_name=user_name,
        user_display_name=user_name,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        # §5.4.3: the same authenticator is not registered twice.
        exclude_credentials=_descriptors(exclude),
    )
    return json.loads(options_to_json(options)), options.challenge


def authentication_options(*, rp_id: str, allow: list[str] | None) -> tuple[dict[str, Any], bytes]:
    """allow=None: usernameless (discoverable); a list: the second-factor step for one user."""
    options = generate_authentication_options(
        rp_id=rp_id,
        timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(allow) if allow else None,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return json.loads(options_to_json(options)), options.challenge


def verify_registration(
    credential: dict[str, Any], *, expected_challenge: bytes, expected_rp_id: str, expected_origin: str
) -> RegisteredKey:
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=expected_challenge,
            expected_rp_id=expected_rp_id,
            expected_origin=expected_origin,
            require_user_presence=True,
            require_user_verification=False,
        )
    except Exception as error:  # noqa: BLE001 - attacker input: every failure is a rejection
        raise PasskeyRejected(detail=f"registration: {type(error).__name__}: {error}") from None
    return RegisteredKey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=str(verified.aaguid),
        backed_up=bool(verified.credential_backed_up),
        user_verified=bool(verified.user_verified),
    )


def assertion_ids(credential: dict[str, Any]) -> AssertionIds:
    try:
        parsed = parse_authentication_credential_json(credential)
        if bytes_to_base64url(parsed.raw_id) != parsed.id:
            raise ValueError("id and rawId differ")
    except Exception as error:  # noqa: BLE001
        raise PasskeyRejected(detail=f"assertion: {type(error).__name__}: {error}") from None
    handle = parsed.response.user_handle
    return AssertionIds(
        credential_id=parsed.id, user_handle=bytes_to_base64url(handle) if handle else None
    )


def verify_assertion(
    credential: dict[str, Any],
    *,
    expected_challenge: bytes,
    expected_rp_id: str,
    expected_origin: str,
    public_key: bytes,
    stored_sign_count: int,
) -> VerifiedAssertion:
    try:
        # The library's own counter check is switched off (current count 0) so that the
        # signature is verified first: only a *genuine* assertion with a stale counter is
        # evidence of a clone, and that is what we record below.
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=expected_challenge,
            expected_rp_id=expected_rp_id,
            expected_origin=expected_origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=False,
        )
    except Exception as error:  # noqa: BLE001
        raise PasskeyRejected(detail=f"assertion: {type(error).__name__}: {error}") from None
    new = verified.new_sign_count
    if (new > 0 or stored_sign_count > 0) and new <= stored_sign_count:
        raise SignCountRegressed(detail=f"sign count {new} not above stored {stored_sign_count}")
    return VerifiedAssertion(
        sign_count=new, user_verified=bool(verified.user_verified), backed_up=bool(verified.credential_backed_up)
    )
