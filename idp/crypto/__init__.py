"""Cryptographic helpers: the key-encryption key and tiny named primitives."""
