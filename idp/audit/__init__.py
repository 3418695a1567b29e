from idp.audit.service import AuditService

__all__ = ["AuditService"]
