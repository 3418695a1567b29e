"""Obtain refresh tokens from both servers by the real authorization code + PKCE flow.

Run by run.sh (not measured). For each token: GET the authorization endpoint with the
signed-in browser session (the first time, sign in through the server's own form:
idp's /login, or node-oidc-provider's development sign-in page), read the code from the
redirect, redeem it at the token endpoint with client_secret_basic and the verifier.

    prepare.py ours|node ISSUER CLIENTS_JSON COUNT OUT_FILE [--password-stdin]

Writes COUNT refresh tokens, one per line, to OUT_FILE.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import time
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
    def __init__(self, kind: str, issuer: str, client: dict, username: str, password: str) -> None:
        self.kind = kind
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
    flow = Flow(kind, issuer, clients["rp"], clients["user"], password)
    started = time.monotonic()
    tokens = [flow.refresh_token() for _ in range(int(count))]
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")
    print(f"{kind}: {len(tokens)} refresh tokens in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
