"""Every admin route and method, with a valid all-scopes administrator token, fed hostile
path segments, query values and JSON bodies: a JSON 4xx (or a 2xx for a harmless
request), never a 500, never an HTML page, never cacheable."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

HOSTILE = ["", "x" * 5000, "\x00", "%FF", "\u202e", "-1", "99999999999999999999", "[]", "{", "null", "é" * 300,
           '{"alg": "\\ud800"}', '{"name": "\\u0000"}', "[" * 5000, '{"a": 1e999}', "1" * 5000]
QUERY_KEYS = ("email", "after", "limit", "from", "anchor")


@pytest.mark.parametrize("settings", [{"rate_limit_token": "100000 per minute"}], indirect=True)
def test_no_admin_route_answers_hostile_input_with_a_500(console):
    token = console.token()
    failures = []
    for rule in console.app.url_map.iter_rules():
        if not rule.rule.startswith("/admin/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for value in HOSTILE:
                segment = quote(value, safe="") or "x"
                path = re.sub(r"<[^>]+>", segment, rule.rule)
                for kind in ("query", "json"):
                    if kind == "query":
                        kwargs = {"query_string": {k: value for k in QUERY_KEYS}}
                    else:
                        kwargs = {"data": value, "content_type": "application/json"}
                    response = console.call(method, path, token, **kwargs)
                    if (response.status_code >= 500 or response.mimetype != "application/json"
                            or response.headers.get("Cache-Control") != "no-store"):
                        failures.append((method, rule.rule, kind, value[:12], response.status_code))
    assert failures == []
