"""Writing objects: where an upload may go and what it may be, then recording it.

A finished upload's file is put in place (a new version) before its row is written, and
removed again if writing the row fails, so no row ever names a missing file.
"""

from __future__ import annotations

import email.policy
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import orjson
from psycopg import errors as pg_errors
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from planwise.config import Settings
from planwise.storage import queries
from planwise.storage.actors import Actor, check_own_folder
from planwise.storage.blobs import BlobStore, Upload
from planwise.storage.errors import (
    bucket_not_found,
    duplicate,
    invalid,
    not_owner,
    object_not_found,
    unsupported_type,
)
from planwise.storage.names import check_bucket_id, check_name
from planwise.storage.objects import DEFAULT_CACHE_SECONDS, find, open_row
from planwise.storage.schemas import MIME_PATTERN, MoveRequest, UploadResult

MAX_USER_METADATA_BYTES = 8 * 1024
CONTENT_TYPE_TEXT = re.compile(r"[\x20-\x7e]{1,255}")
CHARSET = re.compile(r"[a-z0-9][a-z0-9._:-]{0,39}")


def canonical_type(content_type: str) -> str | None:
    """`type/subtype` (lower case) of a Content-Type, with its `charset` for text, else
    nothing of it: every other parameter, and junk such as `image/png;,text/html`, is
    dropped. None when the value is not one type: what a browser reads (up to the first
    `;`) and what a real parser (`email`'s) reads must be the same `type/subtype`."""
    if not CONTENT_TYPE_TEXT.fullmatch(content_type):
        return None
    essence = content_type.split(";", 1)[0].strip().lower()
    message = EmailMessage(policy=email.policy.default)
    message["content-type"] = content_type
    header = message["content-type"]
    if essence != header.content_type or not MIME_PATTERN.match(essence):
        return None
    charset = str(header.params.get("charset", "")).lower()
    if header.maintype == "text" and CHARSET.fullmatch(charset):
        return f"{essence}; charset={charset}"
    return essence


def _matches(essence: str, patterns: list[str]) -> bool:
    return any(
        essence == pattern or (pattern.endswith("/*") and essence.startswith(pattern[:-1]))
        for pattern in patterns
    )


@dataclass(frozen=True)
class Target:
    """Where an upload goes, who uploads it (its owner, unless the service_role key), and
    what it may be."""

    actor: Actor
    bucket_id: str
    name: str
    max_bytes: int
    mime_types: list[str] | None

    def check_type(self, content_type: str, allowed: list[str]) -> str:
        """The canonical content type (what is stored and served), if the server and the
        bucket both allow it (else 415)."""
        canonical = canonical_type(content_type)
        if canonical is None:
            raise unsupported_type(content_type[:100])
        essence = canonical.split(";", 1)[0]
        if essence.endswith("/*") or not _matches(essence, [p.lower() for p in allowed]):
            raise unsupported_type(essence)
        if self.mime_types is not None and not _matches(essence, self.mime_types):
            raise unsupported_type(essence)
        return canonical


def upload_target(
    session: Session, settings: Settings, actor: Actor, bucket_id: str, name: str
) -> Target:
    """An upload by `actor` to `bucket_id/name`, with the bucket's and server's limits."""
    bucket = queries.bucket_row(session, check_bucket_id(bucket_id))
    check_own_folder(actor, bool(bucket.public), check_name(name))
    limit = settings.storage_max_object_bytes
    if bucket.file_size_limit is not None:
        limit = min(limit, int(bucket.file_size_limit))
    return Target(actor, bucket_id, check_name(name), limit, bucket.allowed_mime_types)


def parse_cache_control(value: str | None) -> int:
    """`cacheControl` as storage3 sends it ("3600") or a header ("max-age=3600")."""
    if not value:
        return DEFAULT_CACHE_SECONDS
    match = re.fullmatch(r"\s*(?:max-age=)?(\d{1,9})\s*", value)
    if match is None:
        raise invalid(f"cacheControl {value[:50]!r}: a number of seconds")
    return min(int(match[1]), 365 * 24 * 3600)


def parse_user_metadata(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    if len(value.encode()) > MAX_USER_METADATA_BYTES:
        raise invalid(f"metadata is larger than {MAX_USER_METADATA_BYTES} bytes")
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise invalid("metadata must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise invalid("metadata must be a JSON object")
    return parsed


def _metadata(upload: Upload, mimetype: str, cache_seconds: int) -> dict[str, Any]:
    return {
        "eTag": upload.etag,
        "size": upload.size,
        "mimetype": mimetype,
        "cacheControl": f"max-age={cache_seconds}",
        "lastModified": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "contentLength": upload.size,
        "httpStatusCode": 200,
    }


def store_object(
    session: Session,
    store: BlobStore,
    target: Target,
    upload: Upload,
    mimetype: str,
    *,
    cache_seconds: int,
    user_metadata: dict[str, Any] | None,
    upsert: bool,
    must_exist: bool = False,
) -> UploadResult:
    """Put a finished upload in place and record it (a new row, or a new version of the
    user's own object when `upsert`; `must_exist` for PUT, which only replaces)."""
    version = store.place(upload)
    metadata = orjson.dumps(_metadata(upload, mimetype, cache_seconds)).decode()
    extra = orjson.dumps(user_metadata).decode() if user_metadata is not None else None
    values = {
        "bucket": target.bucket_id, "name": target.name, "owner": target.actor.user_id,
        "version": version, "metadata": metadata, "user_metadata": extra,
    }  # fmt: skip
    try:
        object_id = _record(session, target, values, upsert=upsert, must_exist=must_exist)
    except BaseException:
        store.remove(version)
        raise
    return UploadResult(Id=str(object_id), Key=f"{target.bucket_id}/{target.name}")


def _record(
    session: Session, target: Target, values: dict[str, Any], *, upsert: bool, must_exist: bool
) -> uuid.UUID:
    existing = queries.find_object(session, target.bucket_id, target.name)
    if existing is not None:
        if not (upsert or must_exist):
            raise duplicate()
        if not target.actor.owns_or_administers(existing.owner):
            raise not_owner()
        replaced = session.execute(queries.NEW_VERSION, {**values, "id": existing.id}).scalar()
        if replaced is not None:
            return uuid.UUID(str(replaced))
    if must_exist:
        raise object_not_found()
    try:
        with session.begin_nested():
            created = session.execute(queries.INSERT_OBJECT, values).scalar_one()
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            raise duplicate() from None  # someone else's object, invisible to this user
        if isinstance(error.orig, pg_errors.ForeignKeyViolation):
            raise bucket_not_found() from None
        raise
    return uuid.UUID(str(created))


def copy_object(
    session: Session, settings: Settings, store: BlobStore, actor: Actor, body: MoveRequest
) -> UploadResult:
    """A new object (a copy of the bytes) owned by the user, from one they may read."""
    source = find(session, body.bucketId, body.sourceKey)
    destination = body.destinationBucket or body.bucketId
    target = upload_target(session, settings, actor, destination, body.destinationKey)
    opened = open_row(store, source)
    with opened.file:
        mimetype = target.check_type(opened.mimetype, settings.storage_allowed_mime_types)
        with store.new_upload(target.max_bytes) as upload:
            upload.copy_from(opened.file)
    return store_object(
        session, store, target, upload, mimetype,
        cache_seconds=parse_cache_control(opened.cache_control), user_metadata=None, upsert=False,
    )  # fmt: skip
