"""Outbound mail: composed from templates/mail, sent by SMTP or written to a file outbox."""
