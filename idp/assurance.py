"""Authentication assurance: the acr values we issue and how amr maps onto them.

One ordered list, weakest first (discovery's ``acr_values_supported`` is this list).
``amr`` values are RFC 8176's. The mapping is deliberately conservative: a level is
claimed only when the methods in the session prove it.

- ``urn:idp:acr:pwd``  password only (or any single factor that is not phishing-resistant)
- ``urn:idp:acr:mfa``  two factors, e.g. password + TOTP, password + recovery code
- ``urn:idp:acr:phr``  phishing-resistant multi-factor: a WebAuthn passkey with user
  verification (origin-bound, so a look-alike site cannot relay it), alone or after a password
"""

from __future__ import annotations

from collections.abc import Iterable

ACR_PWD = "urn:idp:acr:pwd"
ACR_MFA = "urn:idp:acr:mfa"
ACR_PHR = "urn:idp:acr:phr"
ACR_VALUES = (ACR_PWD, ACR_MFA, ACR_PHR)  # weakest first

# RFC 8176 method values we put in sessions and tokens.
AMR_PASSWORD = "pwd"
AMR_OTP = "otp"  # TOTP or a one-time recovery code
AMR_HARDWARE_KEY = "hwk"  # WebAuthn authenticator (proof of possession of a key)
AMR_USER_PRESENCE_VERIFIED = "user"  # WebAuthn user verification (PIN/biometric) happened
AMR_MFA = "mfa"  # added whenever more than one factor was used

_RANK = {acr: i for i, acr in enumerate(ACR_VALUES)}


def acr_for(amr: Iterable[str]) -> str:
    methods = set(amr)
    if AMR_HARDWARE_KEY in methods and (AMR_USER_PRESENCE_VERIFIED in methods or AMR_PASSWORD in methods):
        return ACR_PHR
    factors = len(methods & {AMR_PASSWORD, AMR_OTP, AMR_HARDWARE_KEY})
    if factors >= 2:
        return ACR_MFA
    return ACR_PWD


def rank(acr: str) -> int:
    """Position in ACR_VALUES; unknown values rank above everything (never satisfied)."""
    return _RANK.get(acr, len(ACR_VALUES))


def satisfies(have: str, need: str) -> bool:
    return rank(have) >= rank(need)


def baseline_acr(mfa_policy: str) -> str:
    """What every token and authenticated page needs under the deployment's MFA policy."""
    return ACR_MFA if mfa_policy == "required" else ACR_PWD


def with_mfa_marker(amr: Iterable[str]) -> list[str]:
    """amr as issued: methods sorted, plus 'mfa' when they amount to more than one factor
    (a passkey with user verification is possession plus a PIN or biometric)."""
    methods = sorted(set(amr) - {AMR_MFA})
    if acr_for(methods) != ACR_PWD:
        methods.append(AMR_MFA)
    return methods
