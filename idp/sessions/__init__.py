from idp.sessions.service import SessionService

__all__ = ["SessionService"]
