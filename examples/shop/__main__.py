"""``python -m examples.shop [--host H] [--port P]``: the shop on a threaded server."""

from __future__ import annotations

import argparse
import sys

from werkzeug.serving import run_simple

from examples.shop import create_app
from examples.shop.settings import SettingsError


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.shop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args()
    try:
        app = create_app()
    except SettingsError as error:
        sys.exit(f"shop: {error}")
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
