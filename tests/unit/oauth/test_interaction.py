"""The interaction decision: login, step-up, consent (idp/oauth/interaction.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from idp.assurance import ACR_MFA, ACR_PHR, ACR_PWD
from idp.models import OAuthClient, SsoSession
from idp.oauth.interaction import (
    Interaction,
    needs_interaction,
    required_acr,
    step_up_url,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _client(**kw) -> OAuthClient:
    return OAuthClient(id="c", name="C", first_party=kw.get("first_party", False), min_acr=kw.get("min_acr"))


def _session(amr=("pwd",), age=10) -> SsoSession:
    return SsoSession(id="s", user_id="u", auth_time=NOW - dt.timedelta(seconds=age), amr=list(amr))


def decide(session=None, client=None, prompt=(), max_age=None, acr_values=(), policy="optional", consented=False):
    return needs_interaction(
        session=session, client=client or _client(), prompt=frozenset(prompt), max_age=max_age,
        acr_values=acr_values, mfa_policy=policy, consented=consented, now=NOW,
    )


def test_no_session_means_login():
    assert decide() is Interaction.LOGIN


def test_prompt_login_and_max_age():
    assert decide(_session(), prompt=("login",), consented=True) is Interaction.LOGIN
    assert decide(_session(age=120), max_age=60, consented=True) is Interaction.LOGIN
    assert decide(_session(age=30), max_age=60, consented=True) is None


def test_step_up_for_requested_acr_client_minimum_and_policy():
    assert decide(_session(), acr_values=(ACR_MFA,), consented=True) is Interaction.STEP_UP
    assert decide(_session(("pwd", "otp")), acr_values=(ACR_MFA,), consented=True) is None
    assert decide(_session(), client=_client(min_acr=ACR_MFA), consented=True) is Interaction.STEP_UP
    assert decide(_session(), policy="required", consented=True) is Interaction.STEP_UP
    assert decide(_session(("pwd", "otp")), policy="required", consented=True) is None


def test_consent_for_third_party_unless_remembered_and_never_for_first_party():
    assert decide(_session()) is Interaction.CONSENT
    assert decide(_session(), consented=True) is None
    assert decide(_session(), prompt=("consent",), consented=True) is Interaction.CONSENT
    assert decide(_session(), client=_client(first_party=True)) is None


def test_required_acr_takes_the_weakest_acceptable_requested_value():
    client = _client()
    assert required_acr(acr_values=[ACR_PHR, ACR_MFA], client=client, mfa_policy="optional") == ACR_MFA
    assert required_acr(acr_values=["urn:unknown"], client=client, mfa_policy="optional") == ACR_PWD
    assert required_acr(acr_values=[], client=client, mfa_policy="required") == ACR_MFA
    assert required_acr(acr_values=[ACR_PWD], client=_client(min_acr=ACR_PHR), mfa_policy="optional") == ACR_PHR


def test_step_up_url_carries_next_and_the_needed_acr():
    assert (
        step_up_url("/authorize?a=1&b=2", acr=ACR_PHR)
        == "/mfa?next=%2Fauthorize%3Fa%3D1%26b%3D2&acr=urn%3Aidp%3Aacr%3Aphr"
    )
