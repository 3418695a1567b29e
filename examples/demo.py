"""``make demo``: the provider, the wallet and the shop on loopback, ready to try.

Everything lives under instance/demo/: the provider's SQLite file, key folder and mail
outbox, the wallet's ledger, the clients' credentials (clients.json: a secret is shown
only once by ``idp clients create``, so it is kept here and reused on the next start),
the shop's cookie key and the demo user's password. Delete the folder to start over.
Ctrl-C stops all three.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "instance" / "demo"
BIN = Path(sys.executable).parent
PROVIDER_PORT = int(os.environ.get("DEMO_PROVIDER_PORT", "5000"))
SHOP_PORT = int(os.environ.get("DEMO_SHOP_PORT", "5001"))
WALLET_PORT = int(os.environ.get("DEMO_WALLET_PORT", "5002"))
# WebAuthn needs a domain as its RP ID, hence localhost for the provider; the shop and
# the wallet are on 127.0.0.1, another host, so no cookie of one is ever sent to another.
ISSUER = f"http://localhost:{PROVIDER_PORT}"
SHOP_URL = f"http://127.0.0.1:{SHOP_PORT}"
WALLET_URL = f"http://127.0.0.1:{WALLET_PORT}"
DEMO_EMAIL = "demo@example.com"


class DemoError(Exception):
    pass


def provider_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in [n for n in env if n.startswith("IDP_")]:
        del env[name]  # the demo's provider is configured here only
    env.update(
        IDP_ISSUER=ISSUER,
        IDP_DATABASE_URL=f"sqlite:///{DEMO / 'idp.sqlite3'}",
        IDP_KEYS_DIR=str(DEMO / "keys"),
        IDP_MAIL_OUTBOX=str(DEMO / "outbox"),
    )
    return env


def idp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "idp"), *args], input=stdin, capture_output=True, text=True,
                          env=provider_env(), cwd=ROOT, check=False)


def idp_json(*args: str) -> dict[str, str]:
    result = idp(*args)
    if result.returncode != 0:
        raise DemoError(f"idp {' '.join(args[:2])}: {result.stderr.strip() or result.stdout.strip()}")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def kept_secret(path: Path, make) -> str:  # type: ignore[no-untyped-def]
    if path.exists():
        return path.read_text().strip()
    value = make()
    write_private(path, value + "\n")
    return value


def ensure_clients(fresh_database: bool) -> dict[str, dict[str, str]]:
    stored = DEMO / "clients.json"
    if fresh_database:
        stored.unlink(missing_ok=True)  # credentials of a database that is gone
    if stored.exists():
        return json.loads(stored.read_text())  # type: ignore[no-any-return]
    try:
        wallet = idp_json("clients", "create", "--name", "Demo wallet", "--grant-type", "client_credentials",
                          "--resource-uri", WALLET_URL, "--json")
        shop = idp_json("clients", "create", "--name", "Demo shop", "--first-party",
                        "--redirect-uri", SHOP_URL + "/callback", "--scope", "openid email wallet:pay", "--json")
    except DemoError as error:
        raise DemoError(f"{error}\n  The database has clients this script did not record: delete {DEMO} to start over.")
    clients = {"wallet": wallet, "shop": shop}
    write_private(stored, json.dumps(clients, indent=2) + "\n")
    return clients


def ensure_user() -> str:
    password = kept_secret(DEMO / "demo-password", lambda: "demo-" + secrets.token_urlsafe(12))
    result = idp("users", "create", "--email", DEMO_EMAIL, "--password-stdin", "--verified", stdin=password + "\n")
    if result.returncode != 0 and "already exists" not in result.stderr + result.stdout:
        raise DemoError(f"idp users create: {result.stderr.strip()}")
    return password


def wait_http(url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    """Until ``url`` answers at all (any HTTP status), or the process dies, or time runs out."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{name} exited with status {process.returncode} (its output is above)")
        try:
            opener.open(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise DemoError(f"{name} did not answer at {url} within {timeout:.0f} s")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group: Ctrl-C reaches this script only, which then stops each
    # service in turn (a server's workers are in their main process's group).
    return subprocess.Popen(args, env=env, cwd=ROOT, start_new_session=True)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    DEMO.mkdir(parents=True, exist_ok=True)
    fresh = not (DEMO / "idp.sqlite3").exists()
    processes: list[subprocess.Popen[bytes]] = []

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Both explicitly: a shell that starts this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        upgraded = idp("db", "upgrade")
        if upgraded.returncode != 0:
            raise DemoError(f"idp db upgrade: {upgraded.stderr.strip()}")
        clients = ensure_clients(fresh)
        password = ensure_user()
        shop_key = kept_secret(DEMO / "shop-secret-key", lambda: secrets.token_urlsafe(32))

        processes.append(start([str(BIN / "idp"), "serve", "--host", "127.0.0.1", "--port", str(PROVIDER_PORT)],
                               provider_env()))
        wait_http(f"http://127.0.0.1:{PROVIDER_PORT}/readyz", processes[-1], "the provider")

        base = {k: v for k, v in os.environ.items() if not k.startswith(("WALLET_", "SHOP_"))}
        processes.append(start([sys.executable, "-m", "examples.wallet", "--port", str(WALLET_PORT)], {
            **base,
            "WALLET_ISSUER": ISSUER,
            "WALLET_RESOURCE_URI": WALLET_URL,
            "WALLET_CLIENT_ID": clients["wallet"]["client_id"],
            "WALLET_CLIENT_SECRET": clients["wallet"]["client_secret"],
            "WALLET_DATABASE": str(DEMO / "wallet.sqlite3"),
        }))
        wait_http(WALLET_URL + "/balance", processes[-1], "the wallet")
        processes.append(start([sys.executable, "-m", "examples.shop", "--port", str(SHOP_PORT)], {
            **base,
            "SHOP_ISSUER": ISSUER,
            "SHOP_CLIENT_ID": clients["shop"]["client_id"],
            "SHOP_CLIENT_SECRET": clients["shop"]["client_secret"],
            "SHOP_PUBLIC_URL": SHOP_URL,
            "SHOP_WALLET_URL": WALLET_URL,
            "SHOP_SECRET_KEY": shop_key,
        }))
        wait_http(SHOP_URL + "/", processes[-1], "the shop")
        names = dict(zip((p.pid for p in processes), ("the provider", "the wallet", "the shop"), strict=True))

        print(f"""
  Shop:      {SHOP_URL}/          (pays through the wallet at {WALLET_URL})
  Provider:  {ISSUER}/account
  Sign in:   {DEMO_EMAIL} / {password}
  Mail:      {DEMO / 'outbox'}/   (one .eml file per message: sign-in proofs, resets)

  The first sign-in asks for a second factor: the link it mails is in the outbox.
  Payments above 50.00 need a passkey (the wallet asks for urn:idp:acr:phr).
  Ctrl-C stops all three.
""", flush=True)
        while True:
            for process in processes:
                if process.poll() is not None:
                    raise DemoError(f"{names[process.pid]} exited with status {process.returncode}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping the shop, the wallet and the provider", flush=True)
        return 0
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
