"""Back-channel logout, the delivery side: real POSTs to servers on loopback.

What a relying party (or an attacker who registered one) can do to the sender: answer
slowly or never, refuse, redirect elsewhere, or be one of many. None of it may hold the
caller up, leak the token into the log, or reach anything but the registered URI.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from idp.oauth.backchannel import Delivery, Dispatcher, default_dispatcher, post_form

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


class Server:
    """Answers POST /<status> with that status (307 goes to ``redirect_to``); ``/hang``
    never answers. Records every request it saw."""

    def __init__(self, redirect_to: str = "") -> None:
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.redirect_to = redirect_to
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.seen.append({"method": self.command, "path": self.path, "body": body,
                                   "content_type": self.headers.get("Content-Type")})
                if self.path == "/hang":
                    outer.release.wait(30)
                    return
                status = int(self.path.strip("/").split("?")[0] or 200)
                self.send_response(status)
                if status in (301, 302, 303, 307, 308):
                    self.send_header("Location", outer.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _handle
            do_GET = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def delivery(uri: str, *, timeout: float = 2.0, client_id: str = "shop") -> Delivery:
    return Delivery(client_id=client_id, uri=uri, session_id="sid-1", jti="jti-1", timeout=timeout,
                    logout_token="eyJ.secret-logout-token.sig")


def dead_uri() -> str:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    return f"http://127.0.0.1:{port}/"


def test_a_logout_token_is_posted_as_a_form_and_2xx_counts_as_delivered(server):
    dispatcher = Dispatcher()
    dispatcher.submit([delivery(server.base + "/200?x=1"), delivery(server.base + "/204")])
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"delivered": 2}
    first = next(s for s in server.seen if s["path"] == "/200?x=1")  # the query is kept
    assert first["method"] == "POST"
    assert first["content_type"] == "application/x-www-form-urlencoded"
    assert parse_qs(first["body"]) == {"logout_token": ["eyJ.secret-logout-token.sig"]}


def test_an_error_answer_is_counted_as_rejected(server):
    dispatcher = Dispatcher()
    dispatcher.submit([delivery(server.base + "/400"), delivery(server.base + "/500")])
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"rejected": 2}


def test_a_redirect_is_never_followed(server):
    elsewhere = Server()
    try:
        server.redirect_to = elsewhere.base + "/200"
        dispatcher = Dispatcher()
        dispatcher.submit([delivery(server.base + "/307"), delivery(server.base + "/302")])
        assert dispatcher.drain(5) == 0
        assert dispatcher.counts() == {"rejected": 2}
        assert elsewhere.seen == []  # the token went nowhere but the registered URI
    finally:
        elsewhere.close()


def test_a_relying_party_that_never_answers_is_given_up_on_after_the_timeout(server):
    dispatcher = Dispatcher()
    started = time.monotonic()
    dispatcher.submit([delivery(server.base + "/hang", timeout=0.5)])
    assert time.monotonic() - started < 0.2  # submitting never waits for the RP
    assert dispatcher.drain(5) == 0
    assert time.monotonic() - started < 2.0
    assert dispatcher.counts() == {"timeout": 1}


def test_after_a_timeout_the_same_uri_is_skipped_for_a_while_but_others_are_not(server):
    dispatcher = Dispatcher(workers=1)
    dispatcher.submit([delivery(server.base + "/hang", timeout=0.3)])
    dispatcher.drain(5)
    dispatcher.submit([delivery(server.base + "/hang", timeout=0.3), delivery(server.base + "/200")])
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"timeout": 1, "skipped_unreachable": 1, "delivered": 1}
    assert [s["path"] for s in server.seen] == ["/hang", "/200"]  # the skipped one made no connection


def test_a_refused_connection_is_counted_as_unreachable():
    dispatcher = Dispatcher()
    dispatcher.submit([delivery(dead_uri())])
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"unreachable": 1}


def test_proxy_settings_in_the_environment_are_ignored(server, monkeypatch):
    proxy = Server()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.base)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert post_form(server.base + "/200", b"logout_token=x", timeout=2) == 200
        assert proxy.seen == [] and len(server.seen) == 1
    finally:
        proxy.close()


def test_an_https_relying_party_with_a_certificate_we_cannot_verify_gets_nothing(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    impostor = Server()
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        impostor.httpd.socket = context.wrap_socket(impostor.httpd.socket, server_side=True)
        uri = impostor.base.replace("http://", "https://") + "/200"
        with pytest.raises(ssl.SSLCertVerificationError):
            post_form(uri, b"logout_token=x", timeout=2)
        dispatcher = Dispatcher()
        dispatcher.submit([delivery(uri)])
        assert dispatcher.drain(5) == 0
        assert dispatcher.counts() == {"unreachable": 1}
        assert impostor.seen == []  # the token never left
    finally:
        impostor.close()


def test_outcome_observers_see_every_outcome_and_cannot_break_delivery(server):
    dispatcher = Dispatcher()
    seen: list[str] = []
    dispatcher.on_outcome.append(seen.append)
    dispatcher.on_outcome.append(lambda _outcome: 1 / 0)
    dispatcher.submit([delivery(server.base + "/200"), delivery(server.base + "/500")])
    assert dispatcher.drain(5) == 0
    assert sorted(seen) == ["delivered", "rejected"]


def test_only_http_and_https_are_ever_called():
    with pytest.raises(ValueError):
        post_form("file:///etc/passwd", b"", timeout=1)
    dispatcher = Dispatcher()
    dispatcher.submit([delivery("gopher://127.0.0.1:70/")])
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"unreachable": 1}


def test_parallelism_is_bounded_and_everything_is_delivered():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "calls": 0}

    def slow_post(_uri: str, _body: bytes, *, timeout: float) -> int:
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return 200

    dispatcher = Dispatcher(workers=3, post=slow_post)
    dispatcher.submit([delivery(f"https://rp{i}.example/bcl") for i in range(20)])
    assert dispatcher.drain(10) == 0
    assert state["calls"] == 20 and state["peak"] == 3
    assert dispatcher.counts() == {"delivered": 20}


def test_the_queue_is_bounded_and_what_overflows_is_dropped_and_counted():
    gate = threading.Event()

    def blocked_post(_uri: str, _body: bytes, *, timeout: float) -> int:
        gate.wait(5)
        return 200

    dispatcher = Dispatcher(workers=1, max_pending=2, post=blocked_post)
    dispatcher.submit([delivery("https://rp.example/1")])
    time.sleep(0.1)  # the one worker is now busy with it
    dispatcher.submit([delivery(f"https://rp.example/{i}") for i in range(2, 6)])
    assert dispatcher.counts() == {"dropped_queue_full": 2}
    assert dispatcher.drain(0.1) == 3  # one in flight, two queued
    gate.set()
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"dropped_queue_full": 2, "delivered": 3}


def test_what_is_left_at_exit_is_abandoned_and_counted():
    gate = threading.Event()

    def blocked_post(_uri: str, _body: bytes, *, timeout: float) -> int:
        gate.wait(5)
        return 200

    dispatcher = Dispatcher(workers=1, post=blocked_post)
    dispatcher.submit([delivery(f"https://rp.example/{i}") for i in range(3)])
    assert dispatcher.drain(0.2) == 3
    assert dispatcher.abandon() == 2  # queued; the one in flight finishes on its own
    gate.set()
    assert dispatcher.drain(5) == 0
    assert dispatcher.counts() == {"abandoned_at_exit": 2, "delivered": 1}


def test_a_post_function_that_raises_does_not_kill_the_worker(caplog):
    calls = []

    def broken_post(uri: str, _body: bytes, *, timeout: float) -> int:
        calls.append(uri)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return 200

    dispatcher = Dispatcher(workers=1, post=broken_post)
    with caplog.at_level(logging.ERROR, logger="idp.backchannel"):
        dispatcher.submit([delivery("https://a.example/"), delivery("https://b.example/")])
        assert dispatcher.drain(5) == 0
    assert calls == ["https://a.example/", "https://b.example/"]
    assert dispatcher.counts() == {"delivered": 1}


def test_every_outcome_is_logged_without_the_token(server, caplog):
    dispatcher = Dispatcher()
    with caplog.at_level(logging.INFO, logger="idp.backchannel"):
        dispatcher.submit([delivery(server.base + "/200"), delivery(server.base + "/500", client_id="wallet"),
                           delivery(dead_uri(), client_id="gone")])
        assert dispatcher.drain(5) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "idp.backchannel"]
    assert len(lines) == 3
    assert any("delivered" in line and "client=shop" in line and "status=200" in line for line in lines)
    assert any("rejected" in line and "client=wallet" in line and "status=500" in line for line in lines)
    assert any("unreachable" in line and "client=gone" in line for line in lines)
    assert not any("secret-logout-token" in line for line in lines)


def test_a_forked_worker_process_gets_a_dispatcher_of_its_own():
    # A server that forks its workers (Granian, gunicorn --preload): the parent's threads
    # and queue are not theirs.
    parent = default_dispatcher()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        child = default_dispatcher()
        os.write(write_end, b"1" if child is not parent and child.pid == os.getpid() else b"0")
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 1) == b"1"
    os.close(read_end)
    assert default_dispatcher() is parent
