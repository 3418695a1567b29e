"""/healthz says the process answers; /readyz says the database does too."""

from __future__ import annotations

from idp import create_app
from tests.conftest import make_settings


def test_healthz_and_readyz_with_a_working_database(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok", "database": "ok"}
    assert ready.headers["Cache-Control"] == "no-store"


def test_readyz_fails_when_the_database_is_unreachable(tmp_path, redis_url, monkeypatch):
    # Nothing listens on port 1: a load balancer must take this instance out of rotation.
    app = create_app(make_settings(database_url="postgresql://nobody@127.0.0.1:1/idp", redis_url=redis_url,
                                   tmp_path=tmp_path))
    # The failure is logged by design; keep the test output clean. app.logger is the
    # process-wide "idp" logger: monkeypatch puts it back, or later tests lose its records.
    monkeypatch.setattr(app.logger, "disabled", True)
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json() == {"status": "unavailable", "database": "unreachable"}
        assert "127.0.0.1" not in ready.get_data(as_text=True)  # no connection details leak
    finally:
        app.extensions["idp"].engine.dispose()
