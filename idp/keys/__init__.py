"""Signing keys: lifecycle, envelope encryption at rest, the JWKS."""

from idp.keys.service import KeyCache, KeyRing, KeyService, MemoryKeyStore, SigningKeyError, SqlKeyStore

__all__ = ["KeyCache", "KeyRing", "KeyService", "MemoryKeyStore", "SigningKeyError", "SqlKeyStore"]
