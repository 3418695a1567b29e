"""What the person must do before the authorization endpoint may answer the client.

``needs_interaction`` is the single decision (node-oidc-provider's "interaction policy"):
sign in, step up, or consent, in that order. The MFA work extends it through
idp/assurance.py; the screens live elsewhere and hand the person back to /authorize
through ``next=`` (STYLE 2: screens never mint tokens).

- login: no session, ``prompt=login``, or ``max_age`` exceeded (OIDC Core §3.1.2.1);
- step-up: the session's acr (``acr_for(amr)``) is below what the request asks for in
  ``acr_values`` (RFC 9470), below the client's minimum, or below the deployment's
  baseline (``IDP_MFA_POLICY=required``: no token to a password-only session);
- consent: a third-party client without a remembered consent covering the scopes, or
  ``prompt=consent``. First-party clients skip it.
With ``prompt=none`` each of these becomes an error returned to the client instead.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from urllib.parse import urlencode

from idp.assurance import ACR_VALUES, acr_for, baseline_acr, rank, satisfies
from idp.models import OAuthClient, SsoSession

LOGIN_PATH = "/login"
STEP_UP_PATH = "/mfa"


class Interaction(enum.Enum):
    LOGIN = "login"
    STEP_UP = "step_up"
    CONSENT = "consent"


# OIDC Core §3.1.2.6: the error a prompt=none request gets for each interaction.
PROMPT_NONE_ERRORS = {
    Interaction.LOGIN: "login_required",
    Interaction.STEP_UP: "interaction_required",
    Interaction.CONSENT: "consent_required",
}


def required_acr(*, acr_values: Iterable[str], client: OAuthClient, mfa_policy: str) -> str:
    """The weakest acr that satisfies this request.

    ``acr_values`` lists acceptable values in order of preference (OIDC Core §3.1.2.1),
    so any known one will do: the weakest known one is the requirement. Unknown values
    are ignored (a voluntary claim). The client minimum and the policy baseline always apply.
    """
    needed = [baseline_acr(mfa_policy)]
    known = [a for a in acr_values if a in ACR_VALUES]
    if known:
        needed.append(min(known, key=rank))
    if client.min_acr in ACR_VALUES:
        needed.append(client.min_acr)  # type: ignore[arg-type]
    return max(needed, key=rank)


def needs_interaction(
    *,
    session: SsoSession | None,
    client: OAuthClient,
    prompt: frozenset[str],
    max_age: int | None,
    acr_values: Iterable[str],
    mfa_policy: str,
    consented: bool,
    now: dt.datetime,
) -> Interaction | None:
    """None when a code may be issued now; otherwise what has to happen first."""
    if session is None or "login" in prompt:
        return Interaction.LOGIN
    if max_age is not None and (now - session.auth_time).total_seconds() > max_age:
        return Interaction.LOGIN
    if not satisfies(acr_for(session.amr), required_acr(acr_values=acr_values, client=client, mfa_policy=mfa_policy)):
        return Interaction.STEP_UP
    if "consent" in prompt or (not client.first_party and not consented):
        return Interaction.CONSENT
    return None


def login_url(next_url: str, *, login_hint: str | None = None) -> str:
    params = {"next": next_url}
    if login_hint:
        params["login_hint"] = login_hint[:254]
    return LOGIN_PATH + "?" + urlencode(params)


def step_up_url(next_url: str, *, acr: str) -> str:
    """Where a session that is not strong enough goes (the MFA pages, issue 4).

    The needed acr travels explicitly: /mfa must not have to re-derive it from ``next``
    (a pushed request, RFC 9126, would hide acr_values from it and start a loop)."""
    return STEP_UP_PATH + "?" + urlencode({"next": next_url, "acr": acr})
