"""Buckets: anyone signed in lists and reads them, administrators make and change them."""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from planwise.config import Settings
from planwise.storage import queries
from planwise.storage.actors import Actor
from planwise.storage.errors import bucket_not_empty, duplicate, invalid
from planwise.storage.names import check_bucket_id
from planwise.storage.schemas import Bucket, BucketCreate, BucketUpdate

RESERVED_BUCKET_IDS = frozenset(
    {"list", "sign", "upload", "move", "copy", "info", "public", "authenticated", "render"}
)
"""Path words of `/object/…` routes: a bucket so named could not be addressed."""


def _bucket(row: Row[Any]) -> Bucket:
    return Bucket(
        id=row.id,
        name=row.name,
        owner=str(row.owner) if row.owner is not None else "",
        public=row.public,
        file_size_limit=row.file_size_limit,
        allowed_mime_types=row.allowed_mime_types,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_buckets(session: Session) -> list[Bucket]:
    return [_bucket(row) for row in session.execute(queries.BUCKETS)]


def get_bucket(session: Session, bucket_id: str) -> Bucket:
    return _bucket(queries.bucket_row(session, check_bucket_id(bucket_id)))


def _check_limit(settings: Settings, limit: int | None) -> None:
    if limit is not None and limit > settings.storage_max_object_bytes:
        raise invalid(
            f"file_size_limit {limit} exceeds the server's maximum, "
            f"STORAGE_MAX_OBJECT_BYTES={settings.storage_max_object_bytes}"
        )


def create_bucket(session: Session, settings: Settings, actor: Actor, body: BucketCreate) -> str:
    if body.id.lower() in RESERVED_BUCKET_IDS:
        raise invalid(f"bucket id {body.id!r} is reserved (a word of the storage paths)")
    _check_limit(settings, body.file_size_limit if isinstance(body.file_size_limit, int) else None)
    queries.require_admin(session, actor)
    values = {
        "id": body.id,
        "name": body.name or body.id,
        "owner": actor.user_id,
        "public": bool(body.public),
        "limit": body.file_size_limit,
        "types": body.allowed_mime_types,
    }
    try:
        with session.begin_nested():
            session.execute(queries.INSERT_BUCKET, values)
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            raise duplicate() from None
        raise
    return body.id


def update_bucket(
    session: Session, settings: Settings, actor: Actor, bucket_id: str, body: BucketUpdate
) -> None:
    changes: dict[str, Any] = {
        key: getattr(body, key)
        for key in ("public", "file_size_limit", "allowed_mime_types")
        if key in body.model_fields_set
    }
    if changes.get("public") is None:
        changes.pop("public", None)
    _check_limit(settings, changes.get("file_size_limit"))
    queries.require_admin(session, actor)
    queries.bucket_row(session, check_bucket_id(bucket_id))
    session.execute(queries.update_bucket(list(changes)), {**changes, "id": bucket_id})


def empty_bucket(session: Session, actor: Actor, bucket_id: str) -> None:
    """Administrators delete every object, anyone's; the files go after the commit."""
    queries.require_admin(session, actor)
    queries.bucket_row(session, check_bucket_id(bucket_id))
    session.execute(queries.EMPTY_BUCKET, {"id": bucket_id})


def delete_bucket(session: Session, actor: Actor, bucket_id: str) -> None:
    """Only an empty bucket: its objects' rows reference it."""
    queries.require_admin(session, actor)
    queries.bucket_row(session, check_bucket_id(bucket_id))
    try:
        with session.begin_nested():
            session.execute(queries.DELETE_BUCKET, {"id": bucket_id})
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.ForeignKeyViolation):
            raise bucket_not_empty() from None
        raise
