"""What a session needs and which methods can reach it (the seam with OIDC: assurance)."""

from __future__ import annotations

from idp import assurance
from idp.mfa.policy import Factors, methods_reaching, passkey_amr


def test_step_up_raises_the_need_but_never_lowers_it(services):
    step_up = services.step_up
    assert step_up.baseline == assurance.ACR_MFA  # default policy: required
    assert step_up.needed(None) == assurance.ACR_MFA
    assert step_up.needed(assurance.ACR_PWD) == assurance.ACR_MFA
    assert step_up.needed(assurance.ACR_PHR) == assurance.ACR_PHR
    assert step_up.needed("urn:made:up") == assurance.ACR_MFA


def test_only_a_passkey_reaches_phishing_resistant():
    factors = Factors(totp=["t"], passkeys=["p"], recovery_remaining=3)  # type: ignore[list-item]
    assert methods_reaching(assurance.ACR_PHR, factors) == ["passkey"]
    assert methods_reaching(assurance.ACR_MFA, factors) == ["passkey", "totp", "recovery"]
    no_passkey = Factors(totp=["t"], passkeys=[], recovery_remaining=3)  # type: ignore[list-item]
    assert methods_reaching(assurance.ACR_PHR, no_passkey) == []


def test_amr_combinations_map_to_the_documented_levels():
    assert assurance.acr_for(["pwd"]) == assurance.ACR_PWD
    assert assurance.acr_for(["pwd", "otp"]) == assurance.ACR_MFA
    assert assurance.acr_for(["pwd", "otp", *passkey_amr(True)]) == assurance.ACR_PHR
    assert assurance.acr_for(passkey_amr(True)) == assurance.ACR_PHR  # passkey alone, with UV
    assert assurance.acr_for(passkey_amr(False)) == assurance.ACR_PWD  # possession only
    assert assurance.acr_for(["pwd", *passkey_amr(False)]) == assurance.ACR_PHR
