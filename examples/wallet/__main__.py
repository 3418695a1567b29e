"""``python -m examples.wallet [--host H] [--port P]``: the wallet on a threaded server."""

from __future__ import annotations

import argparse
import sys

from werkzeug.serving import run_simple

from examples.wallet import create_app
from examples.wallet.settings import SettingsError
from idp.rp import ProviderUnavailable


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.wallet")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    args = parser.parse_args()
    try:
        app = create_app()
    except (SettingsError, ValueError) as error:
        sys.exit(f"wallet: {error}")
    except ProviderUnavailable as error:
        sys.exit(f"wallet: the provider's discovery document could not be read: {error}")
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
