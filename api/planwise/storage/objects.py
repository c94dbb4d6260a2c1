"""Objects already stored: open, describe, list, remove and move them.

RLS decides what the acting user sees; a row it hides reads as "not found" here.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from psycopg import errors as pg_errors
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from planwise.storage import queries
from planwise.storage.actors import Actor, check_own_folder
from planwise.storage.blobs import BlobStore
from planwise.storage.errors import duplicate, invalid, not_owner, object_not_found
from planwise.storage.names import check_bucket_id, check_name, check_prefix
from planwise.storage.schemas import ListEntry, ListRequest, MoveRequest, ObjectInfo, ObjectRow

logger = logging.getLogger("planwise.storage")

DEFAULT_CACHE_SECONDS = 3600


@dataclass
class Opened:
    """An object ready to stream: the open file survives a concurrent delete."""

    file: IO[bytes]
    name: str
    size: int
    mimetype: str
    etag: str
    cache_control: str
    last_modified: datetime


def open_row(store: BlobStore, row: Row[Any] | None) -> Opened:
    """The file of a row `queries.find_object` returned (None: not found)."""
    if row is None:
        raise object_not_found()
    try:
        handle = store.open(uuid.UUID(str(row.version)))
    except FileNotFoundError:
        logger.error("storage: the file of %s/%s is missing", row.bucket_id, row.name)
        raise object_not_found() from None
    metadata = row.metadata or {}
    return Opened(
        file=handle,
        name=row.name,
        size=int(metadata.get("size", 0)),
        mimetype=str(metadata.get("mimetype", "application/octet-stream")),
        etag=str(metadata.get("eTag", "")),
        cache_control=str(metadata.get("cacheControl", f"max-age={DEFAULT_CACHE_SECONDS}")),
        last_modified=row.updated_at,
    )


def find(session: Session, bucket_id: str, name: str) -> Row[Any] | None:
    """`queries.find_object` of a checked bucket id and key."""
    return queries.find_object(session, check_bucket_id(bucket_id), check_name(name))


def open_object(session: Session, store: BlobStore, bucket_id: str, name: str) -> Opened:
    """An object the acting user may read."""
    return open_row(store, find(session, bucket_id, name))


def open_public(session: Session, store: BlobStore, bucket_id: str, name: str) -> Opened:
    """With nobody acting, RLS shows only objects of public buckets; checked again here."""
    row = find(session, bucket_id, name)
    if row is None or not row.public:
        raise object_not_found()
    return open_row(store, row)


def object_info(session: Session, bucket_id: str, name: str) -> ObjectInfo:
    row = find(session, bucket_id, name)
    if row is None:
        raise object_not_found()
    metadata = row.metadata or {}
    return ObjectInfo(
        id=str(row.id),
        name=row.name,
        version=str(row.version),
        bucket_id=row.bucket_id,
        size=int(metadata.get("size", 0)),
        content_type=str(metadata.get("mimetype", "")),
        cache_control=str(metadata.get("cacheControl", "")),
        etag=str(metadata.get("eTag", "")),
        metadata=row.user_metadata,
        created_at=row.created_at,
        last_modified=row.updated_at,
    )


def list_objects(session: Session, bucket_id: str, body: ListRequest) -> list[ListEntry]:
    """One folder level under `prefix`: files, and sub-folders as bare names."""
    prefix = check_prefix(body.prefix)
    if "\x00" in body.search:
        raise invalid("search must not contain NUL")
    queries.bucket_row(session, check_bucket_id(bucket_id))
    rows = session.execute(
        queries.list_folder(body.sortBy.column, descending=body.sortBy.order == "desc"),
        {
            "bucket": bucket_id, "pattern": queries.like_prefix(prefix), "skip": len(prefix) + 1,
            "search": queries.like_prefix(body.search), "limit": body.limit, "offset": body.offset,
        },
    )  # fmt: skip
    return [
        ListEntry(
            name=row.name,
            id=str(row.id) if row.id is not None else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_accessed_at=None,
            metadata=row.metadata,
        )
        for row in rows
    ]


def _object_row(row: Row[Any]) -> ObjectRow:
    return ObjectRow(
        id=str(row.id), name=row.name, bucket_id=row.bucket_id, owner=str(row.owner),
        created_at=row.created_at, updated_at=row.updated_at, last_accessed_at=None,
        metadata=row.metadata,
    )  # fmt: skip


def remove_objects(session: Session, bucket_id: str, names: list[str]) -> list[ObjectRow]:
    """Delete what the user may delete among `names`; the others are left, unreported.
    The files go after the commit."""
    checked = [check_name(name) for name in names]
    rows = session.execute(
        queries.DELETE_OBJECTS, {"bucket": check_bucket_id(bucket_id), "names": checked}
    ).all()
    return [_object_row(row) for row in rows]


def remove_object(session: Session, bucket_id: str, name: str) -> None:
    if not remove_objects(session, bucket_id, [name]):
        raise object_not_found()


def move_object(session: Session, actor: Actor, body: MoveRequest) -> None:
    """Rename (the file stays: its path is the version, not the name)."""
    destination = body.destinationBucket or body.bucketId
    source_name, target_name = check_name(body.sourceKey), check_name(body.destinationKey)
    bucket = queries.bucket_row(session, check_bucket_id(destination))
    check_own_folder(actor, bool(bucket.public), target_name)
    row = queries.find_object(session, check_bucket_id(body.bucketId), source_name)
    if row is None:
        raise object_not_found()
    if not actor.owns_or_administers(row.owner):
        raise not_owner()
    try:
        with session.begin_nested():
            session.execute(
                queries.MOVE_OBJECT, {"bucket": destination, "name": target_name, "id": row.id}
            )
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            raise duplicate() from None
        raise
