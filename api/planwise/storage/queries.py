"""The SQL of the storage API, and the lookups several of its modules share.

Every statement runs in the request's transaction as `app_service`, with `app.user_id`
set to the acting user (or unset for public downloads): the policies of the realtime and
storage migration decide what each one sees and changes.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, TextClause, text
from sqlmodel import Session

from planwise.storage.actors import Actor
from planwise.storage.errors import StorageError, bucket_not_found, forbidden

STORAGE_MARK = "planwise: local object storage"  # the migration's COMMENT ON SCHEMA storage

SCHEMA_MARK = text(
    "SELECT coalesce(obj_description(oid, 'pg_namespace'), '') "
    "FROM pg_namespace WHERE nspname = 'storage'"
)
ACTING_USER_IS_ADMIN = text("SELECT planwise_acting_user_is_admin()")
RELEASE_FILES = text("DELETE FROM storage.deleted_files RETURNING version")

BUCKET_COLUMNS = (
    "id, name, owner, public, file_size_limit, allowed_mime_types, created_at, updated_at"
)
BUCKETS = text(f"SELECT {BUCKET_COLUMNS} FROM storage.buckets ORDER BY id")  # noqa: S608 - constant
BUCKET = text(f"SELECT {BUCKET_COLUMNS} FROM storage.buckets WHERE id = :id")  # noqa: S608 - constant
INSERT_BUCKET = text(
    "INSERT INTO storage.buckets (id, name, owner, public, file_size_limit, "
    "allowed_mime_types) VALUES (:id, :name, :owner, :public, :limit, :types)"
)
DELETE_BUCKET = text("DELETE FROM storage.buckets WHERE id = :id")
EMPTY_BUCKET = text("DELETE FROM storage.objects WHERE bucket_id = :id")

OBJECT_COLUMNS = (
    "o.id, o.name, o.bucket_id, o.owner, o.version, o.metadata, o.user_metadata, "
    "o.created_at, o.updated_at"
)
OBJECT = text(
    f"SELECT {OBJECT_COLUMNS}, b.public FROM storage.objects o "  # noqa: S608 - constant
    "JOIN storage.buckets b ON b.id = o.bucket_id "
    "WHERE o.bucket_id = :bucket AND o.name = :name"
)
INSERT_OBJECT = text(
    "INSERT INTO storage.objects (bucket_id, name, owner, version, metadata, user_metadata) "
    "VALUES (:bucket, :name, :owner, :version, CAST(:metadata AS jsonb), "
    "CAST(:user_metadata AS jsonb)) RETURNING id"
)
NEW_VERSION = text(
    "UPDATE storage.objects SET version = :version, metadata = CAST(:metadata AS jsonb), "
    "user_metadata = coalesce(CAST(:user_metadata AS jsonb), user_metadata), "
    "updated_at = now() WHERE id = :id RETURNING id"
)
MOVE_OBJECT = text(
    "UPDATE storage.objects SET bucket_id = :bucket, name = :name, updated_at = now() "
    "WHERE id = :id"
)
DELETE_OBJECTS = text(
    "DELETE FROM storage.objects o WHERE o.bucket_id = :bucket "  # noqa: S608 - constant
    f"AND o.name = ANY(:names) RETURNING {OBJECT_COLUMNS}"
)

LIST_ORDER = {"name": "name", "created_at": "created_at", "updated_at": "updated_at",
              "last_accessed_at": "updated_at"}  # fmt: skip
"""`sortBy.column` to the column listings order by (we keep no access times)."""


def update_bucket(columns: list[str]) -> TextClause:
    """Set `columns` (fixed names from `BucketUpdate`) and `updated_at` of bucket `:id`."""
    assignments = "".join(f"{column} = :{column}, " for column in columns)
    return text(f"UPDATE storage.buckets SET {assignments}updated_at = now() WHERE id = :id")  # noqa: S608 - fixed column names


def list_folder(sort_by: str, descending: bool) -> TextClause:
    """One folder level under a prefix: files, and sub-folders as rows with a null id."""
    column, order = LIST_ORDER[sort_by], "DESC" if descending else "ASC"
    return text(
        f"""
        WITH under AS (
            SELECT o.id, o.created_at, o.updated_at, o.metadata,
                   substr(o.name, :skip) AS rest
            FROM storage.objects o
            WHERE o.bucket_id = :bucket AND o.name LIKE :pattern ESCAPE '\\'
        ), entries AS (
            SELECT split_part(rest, '/', 1) AS name, NULL::uuid AS id,
                   NULL::timestamptz AS created_at, NULL::timestamptz AS updated_at,
                   NULL::jsonb AS metadata
            FROM under WHERE strpos(rest, '/') > 0 GROUP BY 1
            UNION ALL
            SELECT rest, id, created_at, updated_at, metadata
            FROM under WHERE strpos(rest, '/') = 0
        )
        SELECT name, id, created_at, updated_at, metadata FROM entries
        WHERE name ILIKE :search ESCAPE '\\'
        ORDER BY {column} {order} NULLS FIRST, name COLLATE "C" {order}
        LIMIT :limit OFFSET :offset
        """  # noqa: S608 - column and order come from fixed tables
    )


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (escape `\\`) for the strings that start with `prefix`."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def check_schema(session: Session) -> None:
    """Serve only a `storage` schema the Planwise migration made (not Supabase's)."""
    mark = session.execute(SCHEMA_MARK).scalar()
    if mark is None:
        raise StorageError(503, "Unavailable", "no storage schema: run `planwise db migrate`")
    if mark != STORAGE_MARK:
        raise StorageError(
            501,
            "NotImplemented",
            "this database's storage schema belongs to Supabase Storage: use the "
            "project's Storage API (https://<project>.supabase.co/storage/v1)",
        )


def require_admin(session: Session, actor: Actor) -> None:
    """Buckets are administered by Planwise admins and the service_role key."""
    if not actor.is_service and not session.execute(ACTING_USER_IS_ADMIN).scalar():
        raise forbidden("only administrators create, change or delete buckets")


def bucket_row(session: Session, bucket_id: str) -> Row[Any]:
    row = session.execute(BUCKET, {"id": bucket_id}).first()
    if row is None:
        raise bucket_not_found()
    return row


def find_object(session: Session, bucket_id: str, name: str) -> Row[Any] | None:
    """The object, if the acting user (or nobody) may see it; with its bucket's `public`."""
    return session.execute(OBJECT, {"bucket": bucket_id, "name": name}).first()


def release_files(session: Session) -> list[uuid.UUID]:
    """Take the versions whose rows went away (this transaction's deletes and replacements,
    and any left by others, e.g. with a deleted user) off the queue: their files may go
    once this transaction commits. Run last before the commit: a concurrent drain of the
    same rows waits for that commit, then skips them."""
    return [uuid.UUID(str(v)) for v in session.execute(RELEASE_FILES).scalars()]
