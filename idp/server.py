"""``idp serve``: gunicorn with threaded workers, configured in code.

gthread workers keep connections alive (the sync worker closes each one, which costs a
TCP handshake per token request) and serve slow clients without blocking a process.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from idp.settings import Settings


ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        from idp import create_app

        return create_app(self._settings)


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    where = f"http://{host}:{port}"
    print(f"idp: issuer {settings.issuer}, listening on {where}", flush=True)
    print(f"idp: sign in at {settings.issuer}/login, create an account at {settings.issuer}/register", flush=True)
    if settings.smtp_url is None:
        print(f"idp: mail is written to {settings.mail_outbox.resolve()}/ (one .eml file per message)", flush=True)
    _Gunicorn(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            # Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads
            # new connections across workers. With one shared socket the first worker to
            # wake accepted every connection of a burst: under wrk all 16 keep-alive
            # connections sat on one worker while the other idled, which halved the
            # throughput (issue 3: 294 req/s against 565 for two balanced workers).
            # Side effect: another server started on the same port by the same user
            # joins in instead of failing with "address in use".
            "reuse_port": True,
            "keepalive": 5,
            "accesslog": "-",
            # Path without the query string, and no Referer: mailed one-time links
            # (/verify-email?token=, /reset/confirm?token=, ...) must not be logged while
            # they are still usable, and the Referer of the POST that spends them repeats them.
            "access_log_format": ACCESS_LOG_FORMAT,
            "errorlog": "-",
            "forwarded_allow_ips": "",  # client address is decided by IDP_TRUSTED_PROXIES only
            "proxy_allow_ips": "",
            "preload_app": False,
        },
    ).run()
