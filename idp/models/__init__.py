"""All tables. Importing this package registers every model on ``Base.metadata``."""

from idp.models.audit import AuditEvent
from idp.models.sessions import SsoSession
from idp.models.users import EmailToken, User

__all__ = ["AuditEvent", "EmailToken", "SsoSession", "User"]
