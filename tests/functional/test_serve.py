"""`make run` as a newcomer gets it: `idp db upgrade` then `idp serve`, nothing else.

The real console script in a subprocess, in an empty folder, with the embedded defaults
(SQLite, file outbox, key-encryption key generated on first start).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

IDP = Path(sys.executable).with_name("idp")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, *, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> httpx.Response:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"idp serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s:\n{log.read_text()}")


def check_connection_handling(port: int) -> None:
    # Two requests on one connection: the second reuses it (keep-alive).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    first = conn.getresponse()
    assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
    first.read()
    sock = conn.sock
    conn.request("GET", "/readyz")
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()

    # A 50 MB body announced, 1 KB sent: answered 413 at once, the rest never read.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: 50000000\r\n\r\n" + b"a" * 1024)
        assert raw.recv(64).startswith(b"HTTP/1.1 413")

    # More silent connections than a worker has threads (4; 8 under gunicorn before): the
    # server still answers.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        for sock_ in idle:
            sock_.close()


def test_fresh_folder_db_upgrade_then_serve(tmp_path):
    port = free_port()
    issuer = f"http://localhost:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'instance' / 'idp.sqlite3'}",
        IDP_KEYS_DIR=str(tmp_path / "keys"),
        IDP_MAIL_OUTBOX=str(tmp_path / "instance" / "outbox"),
        IDP_ISSUER=issuer,
    )
    # Production-strength argon2 and IDP_ENV unset (development): as `make run` has it.
    upgrade = subprocess.run([str(IDP), "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    assert (tmp_path / "instance" / "idp.sqlite3").exists()

    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(IDP), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/healthz", proc=proc, log=log)
        assert health.json()["status"] == "ok"
        ready = wait_for(f"http://127.0.0.1:{port}/readyz", proc=proc, log=log)
        assert ready.json() == {"status": "ok", "database": "ok"}

        # The key-encryption key was generated on first start, readable by its owner only.
        kek = tmp_path / "keys" / "kek"
        assert kek.exists()
        assert stat.S_IMODE(kek.stat().st_mode) == 0o600

        # The sign-in page works against the migrated database.
        page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=10)
        assert page.status_code == 200
        assert 'name="username"' in page.text and 'name="password"' in page.text

        # The server (Granian, idp/server.py) as a client meets it: keep-alive, a body
        # over IDP_MAX_CONTENT_LENGTH refused from its Content-Length before it is sent,
        # and idle connections that hold no worker thread.
        check_connection_handling(port)

        # A mailed one-time token in a query string never reaches the access log.
        secret = "tok-" + "x" * 40
        httpx.get(f"http://127.0.0.1:{port}/verify-email", params={"token": secret},
                  headers={"Referer": f"{issuer}/verify-email?token={secret}"}, timeout=10)
        time.sleep(0.5)  # the access log line is written after the response

        output = log.read_text()
        assert "GET /verify-email " in output  # the access log is on
        assert secret not in output
        assert f"sign in at {issuer}/login" in output
        assert "Traceback" not in output
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # Stopped cleanly on SIGTERM (Granian's graceful shutdown: requests in flight finish).
    assert proc.returncode == 0, log.read_text()


def test_the_access_log_can_be_switched_off(tmp_path):
    """IDP_ACCESS_LOG=false: behind a proxy that logs every request already."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        IDP_KEYS_DIR=str(tmp_path / "keys"),
        IDP_MAIL_OUTBOX=str(tmp_path / "outbox"),
        IDP_ISSUER=f"http://localhost:{port}",
        IDP_ACCESS_LOG="false",
    )
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(IDP), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc=proc, log=log)
        assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200
        time.sleep(0.5)  # where the access log line would have been written
        output = log.read_text()
        assert "GET /login" not in output and "GET /healthz" not in output
        assert "listening on" in output  # the server's own lines are still there
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
