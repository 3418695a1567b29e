"""Addresses as they may appear where the address itself should not: notices, logs, audit."""

from __future__ import annotations


def mask_address(address: str) -> str:
    """``nina@example.com`` -> ``n***@example.com``: enough for the owner to recognise
    which address is meant, not enough for a reader of the log or of a forwarded notice
    to write to it."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"
