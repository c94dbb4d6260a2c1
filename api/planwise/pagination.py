"""Keyset pagination: an opaque cursor holding the sort key of the last item served.

Keyset (WHERE key > last) costs the same on page 1000 as on page 1, unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query, status
from pydantic import BaseModel

Limit = Annotated[int, Query(ge=1, le=100, description="items per page (max 100)")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page")
]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _as_kind(value: Any, kind: type) -> Any:
    """`value` if it is a `kind` the database can compare with (floats accept ints), else
    None: a JSON `true` is no integer here, nor is an infinity a float, nor NUL text."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int) and abs(value) <= 2**53:
        value = float(value)
    if kind is float:
        return value if isinstance(value, float) and math.isfinite(value) else None
    if kind is int:
        return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None
    if kind is str:
        return value if isinstance(value, str) and "\x00" not in value else None
    raise TypeError(f"cursor keys are int, float or str, not {kind.__name__}")


def decode_cursor(cursor: str | None, expected: dict[str, type]) -> dict[str, Any] | None:
    """The key inside a cursor we issued; 400 for anything else."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        key = None
    decoded: dict[str, Any] = {}
    if isinstance(key, dict) and set(key) == set(expected):
        decoded = {name: _as_kind(key[name], kind) for name, kind in expected.items()}
    if not decoded or None in decoded.values():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor")
    return decoded


def make_page(rows: list[T], limit: int, key: Callable[[T], dict[str, Any]]) -> Page[T]:
    """`rows` were fetched with LIMIT limit + 1: the extra row only says another page exists."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(key(items[-1])) if more else None)
