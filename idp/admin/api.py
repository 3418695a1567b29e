"""Placeholder: the admin API is being built (issue 7)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    return None
