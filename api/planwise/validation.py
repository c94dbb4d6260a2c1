"""Input types shared by the domains' request models."""

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, Field


def _no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL: answer 422 rather than fail in the database."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


DbStr = Annotated[str, AfterValidator(_no_nul)]
"""A string PostgreSQL can store; add length limits with Field(...) where it is used."""

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)|secret|token|api_?key|credential|authorization", re.IGNORECASE
)
"""Field names whose values a 422 never echoes."""
REDACTED = "[redacted]"
MAX_ERRORS = 20
MAX_ECHO_CHARS = 100
MAX_ECHO_ITEMS = 10
MAX_ECHO_DEPTH = 3


def bounded_echo(value: Any, depth: int = 0) -> Any:
    """`value` as a 422 may echo it: secret-named fields redacted, strings cut at
    MAX_ECHO_CHARS, containers at MAX_ECHO_ITEMS items and MAX_ECHO_DEPTH levels."""
    if isinstance(value, str | bytes | bytearray):
        text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
        if len(text) <= MAX_ECHO_CHARS:
            return text
        return f"{text[:MAX_ECHO_CHARS]}… ({len(text) - MAX_ECHO_CHARS} more characters)"
    if isinstance(value, dict | list | tuple) and depth >= MAX_ECHO_DEPTH:
        return "…"
    if isinstance(value, dict):
        echoed = {
            str(key): REDACTED if SECRET_NAME.search(str(key)) else bounded_echo(item, depth + 1)
            for key, item in list(value.items())[:MAX_ECHO_ITEMS]
        }
        if len(value) > MAX_ECHO_ITEMS:
            echoed["…"] = f"{len(value) - MAX_ECHO_ITEMS} more keys"
        return echoed
    if isinstance(value, list | tuple):
        items = [bounded_echo(item, depth + 1) for item in value[:MAX_ECHO_ITEMS]]
        if len(value) > MAX_ECHO_ITEMS:
            items.append(f"… {len(value) - MAX_ECHO_ITEMS} more items")
        return items
    return value


def public_errors(errors: Sequence[Any]) -> list[Any]:
    """Validation errors as a 422 shows them: at most MAX_ERRORS (then one saying how
    many more), inputs bounded, and nothing echoed from a field named like a secret."""
    shown: list[Any] = []
    for error in errors[:MAX_ERRORS]:
        if not isinstance(error, dict):
            continue
        loc = error.get("loc", ())
        secret = any(SECRET_NAME.search(str(part)) for part in loc)
        public = {**error, "input": REDACTED if secret else bounded_echo(error.get("input"))}
        if "ctx" in public:
            public["ctx"] = bounded_echo(public["ctx"])
        shown.append(public)
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        shown.append({"type": "too_many_errors", "loc": [], "input": None,
                      "msg": f"{more} more errors not shown"})  # fmt: skip
    return shown
