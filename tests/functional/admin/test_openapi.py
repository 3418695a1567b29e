"""The OpenAPI document is the admin API's contract: it lists exactly the routes and
methods the app registers under /admin, each with the scope its view demands."""

from __future__ import annotations

import json
import re

from idp.admin.api import OPENAPI_PATH

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _registered(app) -> dict[tuple[str, str], object]:  # type: ignore[no-untyped-def]
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule == "/admin" or rule.rule.startswith("/admin/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - IGNORED_METHODS:
                routes[(path, method.lower())] = app.view_functions[rule.endpoint]
    return routes


def test_the_document_is_served_without_auth_and_is_the_file(client):
    response = client.get("/admin/openapi.json")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert response.get_json()["openapi"].startswith("3.1")


def test_the_document_lists_exactly_the_registered_admin_routes_and_their_scopes(app):
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    documented = {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }
    registered = _registered(app)
    assert set(documented) == set(registered)
    for key, operation in documented.items():
        view = registered[key]
        scope = getattr(view, "admin_scope", None)
        declared = [s for requirement in operation.get("security", []) for s in requirement.get("adminToken", [])]
        assert declared == ([scope] if scope else []), key
        # Every protected operation documents its 401 and 403 (RFC 6750 challenges).
        if scope:
            assert {"401", "403"} <= set(operation["responses"]), key
    for path in {p for p, _ in documented}:
        for name in re.findall(r"{([^}]+)}", path):
            for method in document["paths"][path]:
                params = {p["name"] for p in document["paths"][path][method].get("parameters", [])}
                assert name in params, (path, method, name)
