"""Obtain refresh tokens from both servers by the real authorization code + PKCE flow.

Run by run.sh (not measured). For each token: GET the authorization endpoint with the
signed-in browser session (the first time, sign in through the server's own form:
idp's /login, or node-oidc-provider's development sign-in page), read the code from the
redirect, redeem it at the token endpoint with client_secret_basic and the verifier.
idp asks a password-only sign-in from an unrecognised device for a mailed link (the
new-device gate, issue 6): the link is read from idp's file outbox (--outbox), as the
person would read their mail.

    prepare.py ours|node ISSUER CLIENTS_JSON COUNT OUT_FILE [--password-stdin] [--outbox DIR]

Writes COUNT refresh tokens, one per line, to OUT_FILE.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import re
import secrets
import sys
import time
from pathlib import Path
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests


class Forms(HTMLParser):
    """The forms of a page: action, method and their inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or "get").lower(), "fields": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["fields"].setdefault(a["name"], a.get("value") or "")


def forms_of(html: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Flow:
    def __init__(self, kind: str, issuer: str, client: dict, username: str, password: str,
                 outbox: Path | None = None) -> None:
        self.kind = kind
        self.outbox = outbox
        self.issuer = issuer
        self.client = client
        self.username = username
        self.password = password
        self.http = requests.Session()
        meta = self.http.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
        self.authorization_endpoint = meta["authorization_endpoint"]
        self.token_endpoint = meta["token_endpoint"]

    def _sign_in(self, url: str) -> requests.Response:
        """Complete the server's sign-in page found at url; return the final redirect."""
        page = self.http.get(url, timeout=10, allow_redirects=False)
        page.raise_for_status()
        form = next(f for f in forms_of(page.text) if "password" in f["fields"])
        fields = dict(form["fields"])
        if self.kind == "ours":
            fields.update(username=self.username, password=self.password)
        else:
            fields.update(login=self.username, password=self.password)
        response = self.http.post(urljoin(page.url, form["action"] or page.url), data=fields, timeout=30, allow_redirects=False)
        if response.status_code not in (302, 303):
            raise SystemExit(f"{self.kind}: sign-in failed with HTTP {response.status_code}: {response.text[:300]}")
        return response

    def _prove_device(self, url: str) -> None:
        """idp's new-device gate: ask for the link, read it from the outbox, spend it."""
        if self.outbox is None:
            raise SystemExit(f"{self.kind}: the new-device gate needs --outbox")
        page = self.http.get(url, timeout=10, allow_redirects=False)
        form = next(f for f in forms_of(page.text) if f["action"].endswith("/login/new-device"))
        before = time.time() - 1
        sent = self.http.post(urljoin(page.url, form["action"]), data=form["fields"], timeout=30)
        if sent.status_code != 200:
            raise SystemExit(f"{self.kind}: the new-device link was not sent: HTTP {sent.status_code}")
        link = None
        for _ in range(50):
            link = self._mailed_link("/login/link/confirm", since=before)
            if link:
                break
            time.sleep(0.2)
        if link is None:
            raise SystemExit(f"{self.kind}: no sign-in link in {self.outbox}")
        page = self.http.get(link, timeout=10)
        form = next(f for f in forms_of(page.text) if "token" in f["fields"])
        confirmed = self.http.post(urljoin(page.url, form["action"] or page.url), data=form["fields"],
                                   timeout=30, allow_redirects=False)
        if confirmed.status_code not in (302, 303):
            raise SystemExit(f"{self.kind}: the sign-in link was refused: HTTP {confirmed.status_code}")

    def _mailed_link(self, path: str, *, since: float) -> str | None:
        assert self.outbox is not None
        mails = sorted((p for p in self.outbox.glob("*.eml") if p.stat().st_mtime >= since),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for mail in mails:
            message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            found = re.findall(r"https?://\S+" + re.escape(path) + r"\S*", body)
            if found:
                return found[-1]
        return None

    def code(self) -> tuple[str, str]:
        verifier, challenge = pkce()
        state = secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": self.client["client_id"],
            "redirect_uri": self.client["redirect_uri"],
            "scope": "openid api",
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if self.kind == "node":
            params["resource"] = "urn:idp-bench:api"
        response = self.http.get(self.authorization_endpoint, params=params, timeout=10, allow_redirects=False)
        for _ in range(10):
            location = response.headers.get("Location")
            if response.status_code not in (302, 303) or not location:
                raise SystemExit(f"{self.kind}: authorization stopped at HTTP {response.status_code}: {response.text[:300]}")
            target = urljoin(response.url, location)
            if target.startswith(self.client["redirect_uri"]):
                query = parse_qs(urlsplit(target).query)
                if "code" not in query:
                    raise SystemExit(f"{self.kind}: authorization error: {target}")
                if query.get("state") != [state]:
                    raise SystemExit(f"{self.kind}: state did not round-trip")
                return query["code"][0], verifier
            path = urlsplit(target).path
            if path == "/login/new-device":
                self._prove_device(target)
                return self.code()  # the device is recognised now: start again
            if path.startswith("/login") or path.startswith("/interaction/"):
                response = self._sign_in(target)
            else:
                response = self.http.get(target, timeout=10, allow_redirects=False)
        raise SystemExit(f"{self.kind}: too many redirects")

    def refresh_token(self) -> str:
        code, verifier = self.code()
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.client["redirect_uri"],
            "code_verifier": verifier,
        }
        response = requests.post(
            self.token_endpoint,
            data=body,
            auth=(self.client["client_id"], self.client["client_secret"]),
            timeout=10,
        )
        if response.status_code != 200 or "refresh_token" not in response.json():
            raise SystemExit(f"{self.kind}: code exchange failed: HTTP {response.status_code} {response.text[:300]}")
        return response.json()["refresh_token"]


def main() -> None:
    kind, issuer, clients_file, count, out = sys.argv[1:6]
    clients = json.loads(open(clients_file).read())
    password = sys.stdin.readline().strip() if "--password-stdin" in sys.argv else "any-password"
    outbox = Path(sys.argv[sys.argv.index("--outbox") + 1]) if "--outbox" in sys.argv else None
    flow = Flow(kind, issuer, clients["rp"], clients["user"], password, outbox)
    started = time.monotonic()
    tokens = [flow.refresh_token() for _ in range(int(count))]
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")
    print(f"{kind}: {len(tokens)} refresh tokens in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
