"""A password that must be replaced (found in a breach, reset by an operator) is replaced
before any client gets a code, and the authorization request then resumes."""

from __future__ import annotations

from urllib.parse import parse_qs, urljoin, urlsplit

from sqlalchemy import update

from idp.models import User
from tests.functional.oauth.conftest import PASSWORD, callback_params, make_user, new_verifier, register, rp

NEW_PASSWORD = "a different long passphrase 2026"


def _force_change(idp, user_id: str) -> None:
    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:
        db.execute(update(User).where(User.id == user_id).values(must_change_password=True))
        db.commit()


def test_authorize_sends_a_must_change_user_to_the_change_page_then_resumes(idp, browser_factory):
    user_id = make_user(idp)
    reg = register(idp, first_party=True)
    browser = browser_factory()
    assert browser.sign_in().status_code == 302
    _force_change(idp, user_id)

    client = rp(idp, reg)
    url, state = client.create_authorization_url(idp.url + "/authorize", code_verifier=new_verifier(), nonce="n-1")
    response = browser.http.get(url)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/account/password"
    assert parse_qs(location.query)["forced"] == ["1"]
    resume = parse_qs(location.query)["next"][0]
    assert resume.startswith("/authorize?")

    # No code was issued on the way: nothing went to the client.
    assert reg.redirect_uri not in response.headers["Location"]
    # prompt=none cannot do the change: interaction_required goes back to the client.
    silent = browser.http.get(url + "&prompt=none")
    assert callback_params(silent)["error"] == "interaction_required"

    page = browser.http.get(response.headers["Location"])
    changed = browser.http.post(
        response.headers["Location"],
        data={"csrf_token": browser.csrf(page.text), "current_password": PASSWORD, "new_password": NEW_PASSWORD,
              "next": resume},
    )
    assert changed.status_code == 302, changed.text[:400]
    back = browser.http.get(urljoin(idp.url, changed.headers["Location"]))
    params = callback_params(back)
    assert params["state"] == state and "code" in params
