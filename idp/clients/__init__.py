"""Relying-party registrations (OAuth clients)."""

from idp.clients.service import ClientService, redirect_uri_matches

__all__ = ["ClientService", "redirect_uri_matches"]
