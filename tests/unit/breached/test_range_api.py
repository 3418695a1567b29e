"""The optional range API check, against a stub on 127.0.0.1 speaking the API's format.

The real service is not reachable from tests (and no test may call the internet); the
stub answers like it: ``SUFFIX:COUNT`` lines, CRLF, padded with count-0 entries.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from idp.breached.range_api import PwnedRangeApi, RangeApiUnavailable
from idp.breached.service import (
    BreachCheckUnavailable,
    CorpusChecker,
    WithRangeApi,
    build_breached,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

LEAKED = "a password leaked only online"


@dataclass
class Stub:
    url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    mode: str = "ok"


@pytest.fixture
def stub() -> Iterator[Stub]:
    leaked = hashlib.sha1(LEAKED.encode()).hexdigest().upper()
    padded_only = hashlib.sha1(b"padding entry").hexdigest().upper()
    state = Stub(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers)))
            if state.mode == "slow":
                threading.Event().wait(1.0)
            if state.mode == "error":
                self.send_response(503)
                self.end_headers()
                return
            prefix = self.path.rsplit("/", 1)[-1]
            lines = [f"{'0' * 35}:0", f"{'F' * 35}:0"]  # padding
            if leaked.startswith(prefix):
                lines.append(f"{leaked[5:]}:4242")
            if padded_only.startswith(prefix):
                lines.append(f"{padded_only[5:]}:0")
            body = ("garbage\r\n" if state.mode == "garbage" else "\r\n".join(lines)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/range/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_only_five_hex_characters_leave_and_padding_is_requested(stub):
    api = PwnedRangeApi(base_url=stub.url, timeout_seconds=2)
    assert api.is_breached(LEAKED)
    path, headers = stub.requests[-1]
    digest = hashlib.sha1(LEAKED.encode()).hexdigest().upper()
    assert path == f"/range/{digest[:5]}"
    assert digest[5:] not in path and LEAKED not in path
    assert headers.get("Add-Padding") == "true"


def test_padding_entries_do_not_count_as_breached(stub):
    api = PwnedRangeApi(base_url=stub.url, timeout_seconds=2)
    assert not api.is_breached("padding entry")
    assert not api.is_breached("a long password nobody has ever leaked 7f3c")


def test_unreachable_api_fails_open_by_default_with_a_log_line(stub, tmp_path: Path, caplog):
    stub.mode = "error"
    checker = build_breached(corpus=tmp_path / "none.idpbf", reload_seconds=0, range_api=True,
                             range_url=stub.url, range_timeout_ms=500, range_fail="open")
    with caplog.at_level(logging.WARNING, logger="idp.breached"):
        assert not checker.is_breached(LEAKED)
    assert "breached.range_api_unavailable" in caplog.text


def test_fail_closed_refuses_with_a_try_again_message(stub, tmp_path: Path):
    stub.mode = "garbage"
    checker = WithRangeApi(offline=CorpusChecker(path=tmp_path / "none", reload_seconds=0),
                           online=PwnedRangeApi(base_url=stub.url, timeout_seconds=1), fail_mode="closed")
    with pytest.raises(BreachCheckUnavailable, match="try again"):
        checker.is_breached(LEAKED)


def test_timeout_is_enforced(stub):
    stub.mode = "slow"
    with pytest.raises(RangeApiUnavailable):
        PwnedRangeApi(base_url=stub.url, timeout_seconds=0.2).is_breached(LEAKED)


def test_offline_corpus_answers_first_without_a_request(stub, tmp_path: Path):
    checker = build_breached(corpus=tmp_path / "none.idpbf", reload_seconds=0, range_api=True,
                             range_url=stub.url, range_timeout_ms=500, range_fail="open")
    assert checker.is_breached("password")  # on the shipped list
    assert stub.requests == []


def test_the_range_api_is_off_by_default(tmp_path: Path):
    from idp.settings import Settings

    settings = Settings.from_env({})
    assert settings.breached_range_api is False
    checker = build_breached(corpus=tmp_path / "none.idpbf", reload_seconds=0, range_api=False,
                             range_url=settings.breached_range_url, range_timeout_ms=1, range_fail="open")
    assert isinstance(checker, CorpusChecker)
