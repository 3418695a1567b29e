"""Done-when 2: in the PostgreSQL run, a missing PostgreSQL fails the run; it never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

REPO = Path(__file__).resolve().parents[2]


def test_postgres_run_without_postgres_fails_loudly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_TEST_DATABASE="postgresql",
        IDP_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:1/test",  # nothing listens there
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"),
         "tests/functional/test_health.py::test_healthz_and_readyz_with_a_working_database"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "PostgreSQL is required for this run" in output
    assert "passed" not in output and "skipped" not in output
