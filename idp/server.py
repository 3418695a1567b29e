"""``idp serve``: the WSGI app under Granian, configured in code.

Why Granian and not gunicorn (issue 3): its HTTP handling (parsing, keep-alive, writing)
is Rust, so a request costs the Python processes little more than the application's own
work. On this project's 2-core benchmark machine, with the same 2 workers of 8 threads
and the access log on, a client_credentials request cost the server's processes about
10% less CPU under Granian than under gunicorn's gthread workers (0.74-0.77 ms against
0.82-0.85 ms, same minutes), and a bare WSGI "hello" was served 3.7x as fast;
`make bench-oidc` measures both servers (benchmarks/RESULTS.md).
What gunicorn gave is kept: keep-alive, several worker processes (one per core by
default) each with a pool of threads for blocking I/O, a worker that dies is replaced,
SIGTERM finishes the requests in flight then exits 0, the body is streamed to the app
(a 300 MB upload with a small Content-Length limit is refused before it is read).
"""

from __future__ import annotations

from idp.settings import Settings

# Request path without the query string, and no Referer: mailed one-time links
# (/verify-email?token=, /reset/confirm?token=, ...) must not be logged while they are
# still usable, and the Referer of the POST that spends them repeats them. The address
# is the TCP peer (the proxy, behind one): IDP_TRUSTED_PROXIES decides the client
# address inside the app, not here.
ACCESS_LOG_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d "%(header{user-agent})s" %(dt_ms).1fms'
)
# Seconds a stopping worker has to finish the requests it holds (gunicorn's default).
GRACEFUL_SECONDS = 30


def application():  # type: ignore[no-untyped-def]
    """Granian's app factory, called once in each worker process; the settings come from
    the same environment ``idp serve`` checked before starting them."""
    from idp import create_app

    return create_app()


def run(
    settings: Settings, *, host: str, port: int, workers: int, threads: int,
    app_factory: str = "idp.server:application",
) -> None:
    """Serve until SIGTERM/SIGINT. ``app_factory`` ("module:function", importable by the
    workers) lets a benchmark serve a variant of the app."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    where = f"http://{host}:{port}"
    print(f"idp: issuer {settings.issuer}, listening on {where}", flush=True)
    print(f"idp: sign in at {settings.issuer}/login, create an account at {settings.issuer}/register", flush=True)
    if settings.smtp_url is None:
        print(f"idp: mail is written to {settings.mail_outbox.resolve()}/ (one .eml file per message)", flush=True)
    Server(
        app_factory,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        # The WSGI app runs in this many threads per worker: database, Redis and SMTP
        # calls block one thread, not the process.
        blocking_threads=threads,
        http=HTTPModes.auto,
        websockets=False,
        log_access=settings.access_log,
        log_access_format=ACCESS_LOG_FORMAT,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
    ).serve()
