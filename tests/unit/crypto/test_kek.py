"""The key-encryption key: generated once with 0600, never world-readable, purpose-bound."""

from __future__ import annotations

import base64
import stat

import pytest

from idp.crypto.kek import Kek, KekError, load_or_create

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def test_generated_on_first_start_with_owner_only_permissions(tmp_path):
    keys = tmp_path / "keys"
    first = load_or_create(keys)
    path = keys / "kek"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_bytes().strip())) == 32
    # The second start reads the same key instead of making a new one.
    second = load_or_create(keys)
    assert first.derive("x") == second.derive("x")


def test_a_key_file_others_can_read_is_refused(tmp_path):
    load_or_create(tmp_path)
    (tmp_path / "kek").chmod(0o644)
    with pytest.raises(KekError, match="chmod 600"):
        load_or_create(tmp_path)


def test_a_malformed_key_file_is_refused(tmp_path):
    path = tmp_path / "kek"
    path.write_text("too short\n")
    path.chmod(0o600)
    with pytest.raises(KekError, match="base64 32-byte key"):
        load_or_create(tmp_path)


def test_key_from_the_environment_wins_and_writes_nothing(tmp_path):
    key = base64.b64encode(bytes(range(32))).decode()
    kek = load_or_create(tmp_path / "keys", key)
    assert kek.derive("x") == Kek(bytes(range(32))).derive("x")
    assert not (tmp_path / "keys").exists()
    with pytest.raises(KekError):
        load_or_create(tmp_path, "bm90IDMyIGJ5dGVz")


def test_ciphertext_is_bound_to_its_purpose_and_key():
    kek = Kek(bytes(32))
    blob = kek.encrypt(b"totp secret", purpose="mfa.totp")
    assert kek.decrypt(blob, purpose="mfa.totp") == b"totp secret"
    with pytest.raises(KekError):
        kek.decrypt(blob, purpose="keys.signing")  # moved to another column
    with pytest.raises(KekError):
        Kek(bytes([1]) * 32).decrypt(blob, purpose="mfa.totp")  # another deployment's key
    with pytest.raises(KekError):
        kek.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), purpose="mfa.totp")  # tampered
    assert kek.encrypt(b"same", purpose="p") != kek.encrypt(b"same", purpose="p")  # fresh nonce


def test_derived_keys_are_independent_per_purpose():
    kek = Kek(bytes(32))
    assert kek.derive("flask-secret-key") != kek.derive("mfa.recovery-codes")
    assert "Kek(<redacted>)" == repr(kek)
