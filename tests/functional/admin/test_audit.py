"""Admin API, audit log: the events of ``idp audit export``, page by page, and the verdict
of ``idp audit verify``, including a record edited directly in the database."""

from __future__ import annotations

import json

from sqlalchemy import text

from idp.audit.verify import export_lines


def _all_pages(console, token: str, limit: int) -> list[dict]:  # type: ignore[no-untyped-def]
    events, after = [], 0
    for _ in range(1000):
        page = console.call("GET", f"/admin/audit/events?after={after}&limit={limit}", token)
        assert page.status_code == 200, page.get_data(as_text=True)
        body = page.get_json()
        events += body["events"]
        if body["next_after"] is None:
            return events
        after = body["next_after"]
    raise AssertionError("pagination never ended")


def test_events_page_by_page_are_exactly_the_export(console):
    token = console.token(scope="admin:audit admin:users")
    console.call("POST", f"/admin/users/{console.admin_id}/end-sessions", token)  # some history
    token = console.token(scope="admin:audit")
    registry = console.app.extensions["idp"]
    with registry.sessionmaker() as db:
        exported = [json.loads(line) for line in export_lines(db)]
    assert len(exported) > 5
    assert _all_pages(console, token, limit=2) == exported
    assert _all_pages(console, token, limit=1000) == exported

    first = console.call("GET", "/admin/audit/events?limit=1", token).get_json()
    assert first["events"][0]["seq"] == 1 and first["next_after"] == 1
    beyond = console.call("GET", f"/admin/audit/events?after={10**12}", token).get_json()
    assert beyond == {"events": [], "next_after": None}
    sessions_ended = [e for e in exported if e["event"] == "account.sessions_ended"]
    assert sessions_ended and sessions_ended[0]["details"]["actor"] == console.admin_id

    for query in ("after=-1", "after=x", "limit=0", "limit=1001", "limit=1&limit=2", f"after={2**64}",
                  "after=%EF%BC%91"):  # a full-width digit one
        response = console.call("GET", f"/admin/audit/events?{query}", token)
        assert response.status_code == 400, query


def test_verify_reports_intact_then_names_a_record_edited_in_the_database(console):
    token = console.token(scope="admin:audit")
    intact = console.call("GET", "/admin/audit/verify", token)
    assert intact.status_code == 200
    report = intact.get_json()
    assert report["intact"] is True and report["finding"] is None and report["checked"] >= 3
    head = report["head"]
    assert head.startswith(f"{report['head_seq']}:")

    registry = console.app.extensions["idp"]
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET event = 'signin.password_ok' WHERE seq = 2"))
    tampered = console.call("GET", "/admin/audit/verify", token).get_json()
    assert tampered["intact"] is False
    assert tampered["finding"]["seq"] == 2 and tampered["finding"]["kind"] == "edited"
    assert tampered["checked"] == 1

    # From a later seq the rest still verifies; an anchor from before still matches.
    later = console.call("GET", f"/admin/audit/verify?from=3&anchor={head}", token).get_json()
    assert later["intact"] is True
    for query in ("from=0", "anchor=1:xyz", "anchor=" + "1" * 30 + ":" + "a" * 64, "from=1&from=2"):
        assert console.call("GET", f"/admin/audit/verify?{query}", token).status_code == 400, query
