"""The ``idp`` command starts light: `idp --help`, a usage error or a command that needs
little do not pay for the provider's imports (idp/cli/common.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.backend_independent

HEAVY = ("sqlalchemy", "joserfc", "limits", "flask", "argon2", "redis", "numpy")


def test_importing_the_command_imports_none_of_the_provider_s_libraries():
    program = f"import sys, idp.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
