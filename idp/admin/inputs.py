"""Reading admin-API input strictly: a JSON object with known fields of the right types.

Anything else is a 400 naming the field, never a 500: malformed JSON, a list where an
object belongs, ``true`` where a string belongs, unknown fields (a typo must not be
silently ignored on a security action), strings with control characters or lone
surrogates (PostgreSQL refuses NUL; a surrogate cannot be encoded), oversized values.
Bodies beyond settings.max_content_length are refused by Flask with a 413 first.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from flask import request

from idp.admin.problems import ApiError

# Our ids: users/sessions are token_urlsafe(16); client ids may be chosen ([A-Za-z0-9._~-]).
_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")
MAX_LIST = 20
_MISSING = object()


def bad(description: str) -> ApiError:
    return ApiError(400, "invalid_request", description)


def path_id(value: str) -> str | None:
    """A path segment that could be one of our ids, or None (the caller answers 404)."""
    return value if _ID.fullmatch(value) else None


def json_object(allowed: Iterable[str], *, required: bool = False) -> dict[str, Any]:
    """The request body as a JSON object restricted to ``allowed`` keys. An empty body is
    ``{}`` unless ``required``."""
    raw = request.get_data(cache=True)  # 413 beyond MAX_CONTENT_LENGTH, raised by Flask
    if not raw.strip():
        if required:
            raise bad("Send a JSON object in the request body (Content-Type: application/json).")
        return {}
    if request.mimetype != "application/json":
        raise ApiError(415, "invalid_request", "The request body must be JSON (Content-Type: application/json).")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad(f"Unknown field {_name(unknown[0])}; allowed: {', '.join(sorted(allowed)) or 'none'}.")
    return body


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _name(key: str) -> str:
    shown = "".join(ch for ch in key[:40] if ch.isprintable() and ch.isascii() and ch not in "\"\\")
    return repr(shown)


def text(body: dict[str, Any], key: str, *, max_length: int = 2048, default: Any = _MISSING,
         nullable: bool = False) -> Any:
    value = body.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise bad(f"The field {key!r} is required.")
        return default
    if value is None and nullable:
        return None
    return checked_text(value, key, max_length=max_length)


def checked_text(value: object, key: str, *, max_length: int = 2048) -> str:
    if not isinstance(value, str):
        raise bad(f"The field {key!r} must be a string.")
    if len(value) > max_length:
        raise bad(f"The field {key!r} is longer than {max_length} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise bad(f"The field {key!r} contains control characters or unpaired surrogates.")
    return value


def flag(body: dict[str, Any], key: str, *, default: bool = False) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise bad(f"The field {key!r} must be true or false.")
    return value


def integer(body: dict[str, Any], key: str, *, default: int, minimum: int, maximum: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise bad(f"The field {key!r} must be an integer from {minimum} to {maximum}.")
    return value


def text_list(body: dict[str, Any], key: str, *, max_length: int = 2048) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise bad(f"The field {key!r} must be a list of at most {MAX_LIST} strings.")
    return [checked_text(item, key, max_length=max_length) for item in value]


def query_int(name: str, *, default: int, minimum: int, maximum: int) -> int:
    values = request.args.getlist(name)
    if not values:
        return default
    raw = values[0]
    if len(values) > 1 or not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not minimum <= int(raw) <= maximum:
        raise bad(f"The query parameter {name!r} must be one integer from {minimum} to {maximum}.")
    return int(raw)


def query_text(name: str, *, max_length: int = 320) -> str | None:
    values = request.args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad(f"The query parameter {name!r} was sent more than once.")
    return checked_text(values[0], name, max_length=max_length)
