"""idp.rp runs in a relying service that has none of the provider's server dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[3]

PROGRAM = textwrap.dedent("""
    import sys

    BLOCKED = ("sqlalchemy", "authlib", "argon2", "webauthn", "flask_limiter", "limits", "psycopg",
               "alembic", "redis", "pyotp", "numpy")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Block())
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not block")

    import idp.rp
    import idp.rp.flask
    from idp.rp import (ACR_ORDER, InsufficientAuthentication, InsufficientScope, Introspector, InvalidToken,
                        JwksCache, TokenValidator)
    from idp.rp.flask import current_claims, init_app, require_token

    others = sorted(m for m in sys.modules if m.startswith("idp.") and not m.startswith("idp.rp"))
    assert not others, others
    print("ok")
""")


def test_idp_rp_imports_without_the_providers_dependencies() -> None:
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_blocker_would_catch_a_provider_import() -> None:
    """The test above can fail: importing the provider itself under the same blocker breaks."""
    program = PROGRAM.replace("import idp.rp\n", "import idp.oauth.tokens\nimport idp.rp\n", 1)
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0
    assert "blocked:" in result.stderr
