"""The admin API (JSON over HTTP, mirroring the `idp` CLI): issue 7. See idp/admin/api.py."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from idp.admin import api

    api.init_app(app)
