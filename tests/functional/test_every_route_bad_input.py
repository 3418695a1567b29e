"""Every route, every method, a set of hostile values in the query, the form and a JSON
body, from a signed-in browser: never a 500. CSRF is switched off here so the values
reach the views (tests/functional/test_csrf.py proves CSRF on its own)."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from idp import create_app
from tests.fixtures import start_session

pytestmark = pytest.mark.mfa_policy("optional")

HOSTILE = ["", "x" * 5000, "\x00", "%FF", "\u202e", "-1", "99999999999999999999", "[]", "{", "null", "é" * 300]
FIELDS = ("code", "token", "name", "username", "password", "next", "decision", "client_id", "grant_type",
          "refresh_token", "redirect_uri", "current_password", "new_password", "id_token_hint", "credential",
          "acr", "response_type", "scope", "state", "nonce", "max_age", "login_hint", "prompt", "code_challenge")


@pytest.fixture
def fuzz_app(settings, make_user) -> Flask:  # type: ignore[no-untyped-def]
    application = create_app(settings)
    application.config["WTF_CSRF_ENABLED"] = False
    yield application
    application.extensions["idp"].engine.dispose()


def test_no_route_answers_hostile_input_with_a_500(fuzz_app, make_user):
    make_user("u@example.com")
    browser = fuzz_app.test_client()
    start_session(fuzz_app, browser, "u@example.com", amr=("pwd", "otp"))
    failures = []
    for rule in fuzz_app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "abc", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for value in HOSTILE:
                for kind in ("query", "form", "json"):
                    if kind == "query":
                        kwargs = {"query_string": {k: value for k in FIELDS}}
                    elif kind == "form":
                        kwargs = {"data": {k: value for k in FIELDS}}
                    else:
                        kwargs = {"data": value, "content_type": "application/json"}
                    response = browser.open(path, method=method, **kwargs)
                    if response.status_code >= 500:
                        failures.append((method, rule.rule, kind, value[:12], response.status_code))
    assert failures == []
