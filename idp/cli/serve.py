from __future__ import annotations

import os

import click

from idp.cli.common import fail, load_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default: 1 without IDP_REDIS_URL, else one per core).",
)
# 4, not gunicorn's customary 8: on 2 cores under wrk, 4 threads per worker served about 20%
# more client_credentials and 11% more refreshes than 8, with lower p99, as fewer threads
# contend for each worker's interpreter lock (2 threads did as well as 4 on
# client_credentials; 4 leaves room for requests waiting on the database, Redis or SMTP).
# Granian also warns above 2 x cores + 1. Scale with --workers, not threads.
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256), help="Threads per worker.")
def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    """Run the provider under Granian (worker processes with threads, keep-alive)."""
    from idp.server import run

    settings = load_settings()
    if workers is None:
        workers = 1 if settings.redis_url is None else (os.cpu_count() or 1)
    if workers > 1 and settings.redis_url is None:
        # Counters kept in process memory would be split between workers: an attacker
        # would get a fresh budget on each. Scale out only with shared counters.
        fail("more than one worker needs IDP_REDIS_URL (rate-limit counters must be shared)")
    # Create (or check) the key-encryption key here, once, before the workers start: a bad
    # key file is then one line on stderr, not a worker that fails to boot with a trace.
    from idp.crypto.kek import KekError, load_or_create

    try:
        load_or_create(settings.keys_dir, settings.kek)
    except (KekError, OSError) as error:
        fail(f"key-encryption key: {error}")
    run(settings, host=host, port=port, workers=workers, threads=threads)
