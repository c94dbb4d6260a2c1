"""Bucket ids and object keys: what a request may name, checked before any query."""

from __future__ import annotations

import re
from urllib.parse import quote

from planwise.storage.errors import invalid, invalid_key
from planwise.storage.schemas import BUCKET_ID_PATTERN


def check_bucket_id(bucket_id: str) -> str:
    if not re.fullmatch(BUCKET_ID_PATTERN, bucket_id):
        raise invalid(f"Invalid bucket id {bucket_id!r}: letters, digits, '.', '_', '-'")
    return bucket_id


def check_name(name: str) -> str:
    """An object key: 1-1024 bytes of `/`-separated non-empty segments, none `.` or `..`,
    no control characters or backslashes, no leading or trailing `/`."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_key("not Unicode") from None
    if not 1 <= len(encoded) <= 1024:
        raise invalid_key("1 to 1024 bytes")
    bad_character = any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in name)
    bad_segment = any(part in ("", ".", "..") for part in name.split("/"))
    if bad_character or bad_segment:
        raise invalid_key(repr(name[:200]))
    return name


def check_prefix(prefix: str) -> str:
    """A folder to list: '' (the top) or a key-like path; returned with its trailing '/'."""
    stripped = prefix.strip("/")
    return check_name(stripped) + "/" if stripped else ""


def quoted_key(bucket_id: str, name: str) -> str:
    """`bucket/name` as it goes into a URL path."""
    return f"{quote(bucket_id, safe='')}/{quote(name, safe='/')}"


def url_of(bucket_id: str, name: str) -> str:
    """The object a signed URL's token names (its `url` claim)."""
    return f"{bucket_id}/{name}"
