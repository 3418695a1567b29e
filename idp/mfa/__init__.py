"""Second factors: TOTP (pyotp), passkeys (py_webauthn), recovery codes, policy and step-up.

Services here never import Flask; the pages live in ``idp/web/mfa.py``. Each security
library is imported in exactly one adapter module (``totp_adapter``, ``webauthn_adapter``).
"""
