"""Keyset pagination: an opaque cursor holding the sort key of the last item served.

Keyset (WHERE key > last) costs the same on page 1000 as on page 1, unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
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


def decode_cursor(cursor: str | None, expected: dict[str, type]) -> dict[str, Any] | None:
    """The key inside a cursor we issued; 400 for anything else."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        valid = isinstance(key, dict) and set(key) == set(expected)
        if valid:
            for name, kind in expected.items():
                if kind is float and isinstance(key[name], int):
                    key[name] = float(key[name])
                valid = valid and isinstance(key[name], kind)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor")
    return dict(key)


def make_page(rows: list[T], limit: int, key: Callable[[T], dict[str, Any]]) -> Page[T]:
    """`rows` were fetched with LIMIT limit + 1: the extra row only says another page exists."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(key(items[-1])) if more else None)
