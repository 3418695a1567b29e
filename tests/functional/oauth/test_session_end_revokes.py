"""Ending the sign-in session ends what it led to: the client's tokens stop working."""

from __future__ import annotations

import httpx

from tests.functional.oauth.conftest import make_user, obtain, register


def _active(idp, reg, token: str) -> bool:
    response = httpx.post(idp.url + "/introspect", data={"token": token}, auth=(reg.client_id, reg.secret))
    return response.json()["active"]


def test_sign_out_revokes_the_tokens_the_session_issued(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    browser = browser_factory()
    got = obtain(idp, browser, reg)
    assert _active(idp, reg, got.token["access_token"]) and _active(idp, reg, got.token["refresh_token"])

    page = browser.http.get("/logout")
    assert browser.http.post("/logout", data={"csrf_token": browser.csrf(page.text)}).status_code == 302

    assert not _active(idp, reg, got.token["access_token"])
    assert not _active(idp, reg, got.token["refresh_token"])
    refreshed = httpx.post(idp.url + "/token", auth=(reg.client_id, reg.secret),
                           data={"grant_type": "refresh_token", "refresh_token": got.token["refresh_token"]})
    assert refreshed.json()["error"] == "invalid_grant"


def test_ending_other_sessions_revokes_their_tokens_but_not_ours(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    phone, laptop = browser_factory(), browser_factory()
    on_phone = obtain(idp, phone, reg)
    on_laptop = obtain(idp, laptop, reg)

    account = laptop.http.get("/account")
    assert account.status_code == 200
    ended = laptop.http.post("/account/sessions/end-others", data={"csrf_token": laptop.csrf(account.text)})
    assert ended.status_code == 302

    assert not _active(idp, reg, on_phone.token["access_token"])
    assert not _active(idp, reg, on_phone.token["refresh_token"])
    assert _active(idp, reg, on_laptop.token["access_token"])
    assert _active(idp, reg, on_laptop.token["refresh_token"])
