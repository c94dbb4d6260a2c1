"""Buckets and objects: metadata in the `storage` schema under RLS, bytes on local disk.

Every query runs as `app_service` with `app.user_id` set to the caller (or unset for
public and signed downloads), so the policies of the realtime/storage migration decide
who reads, writes and deletes what; the checks here only turn refusals into clear errors.

Files live under `STORAGE_DIR/objects/<xx>/<version uuid>`: the object's name never
touches the filesystem, every write makes a new version (temporary file, fsync, rename),
and a replaced or deleted version is removed only after the database committed (the
`storage.deleted_files` queue, filled by triggers, also catches rows that went with a
deleted user). A crash can leave an unreferenced file behind, never a row without its file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import jwt
import orjson
from fastapi.responses import JSONResponse
from psycopg import errors as pg_errors
from sqlalchemy import Engine, Row, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from planwise.config import PLANWISE_HOME, Settings
from planwise.db.session import set_acting_user, unit_of_work
from planwise.storage.models import (
    BUCKET_ID_PATTERN,
    MIME_PATTERN,
    Bucket,
    BucketCreate,
    BucketUpdate,
    ListEntry,
    ListRequest,
    MoveRequest,
    ObjectInfo,
    ObjectRow,
    SignedUploadURL,
    SignedURLItem,
    UploadResult,
)
from planwise.users.security import ALGORITHM, InvalidToken, decode_access_token
from planwise.users.service import user_for_supabase

logger = logging.getLogger("planwise.storage")

STORAGE_MARK = "planwise: local object storage"  # the migration's COMMENT ON SCHEMA storage
DOWNLOAD_AUDIENCE = "planwise:storage:download"
UPLOAD_AUDIENCE = "planwise:storage:upload"
SIGNED_UPLOAD_SECONDS = 2 * 3600
RESERVED_BUCKET_IDS = frozenset(
    {"list", "sign", "upload", "move", "copy", "info", "public", "authenticated", "render"}
)
"""Path words of `/object/…` routes: a bucket so named could not be addressed."""
CHUNK_BYTES = 64 * 1024
DEFAULT_CACHE_SECONDS = 3600
MAX_USER_METADATA_BYTES = 8 * 1024
CONTENT_TYPE_TEXT = re.compile(r"[\x20-\x7e]{1,255}")
TEMP_MAX_AGE_SECONDS = 24 * 3600


class StorageError(Exception):
    """A refusal, answered in Supabase Storage's error shape."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.code = code or error
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        return {
            "statusCode": str(self.status),
            "error": self.error,
            "code": self.code,
            "message": self.message,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def object_not_found() -> StorageError:
    return StorageError(404, "not_found", "Object not found", "NoSuchKey")


def bucket_not_found() -> StorageError:
    return StorageError(404, "Bucket not found", "Bucket not found", "NoSuchBucket")


def duplicate() -> StorageError:
    return StorageError(409, "Duplicate", "The resource already exists", "Duplicate")


def forbidden(message: str) -> StorageError:
    return StorageError(403, "Unauthorized", message, "AccessDenied")


def invalid(message: str) -> StorageError:
    return StorageError(400, "Invalid Input", message, "InvalidRequest")


def too_large(limit: int) -> StorageError:
    return StorageError(
        413,
        "Payload too large",
        f"The object exceeded the maximum allowed size ({limit} bytes)",
        "EntityTooLarge",
    )


def unsupported_type(mimetype: str) -> StorageError:
    return StorageError(
        415, "invalid_mime_type", f"mime type {mimetype} is not supported", "InvalidMimeType"
    )


def database_refusal(error: DBAPIError) -> StorageError | None:
    """What a refused statement means to the caller; None for real failures."""
    original = error.orig
    if isinstance(original, pg_errors.InsufficientPrivilege):
        return forbidden("new row violates row-level security policy")
    if isinstance(original, pg_errors.UniqueViolation):
        return duplicate()
    if isinstance(original, pg_errors.DataError | pg_errors.IntegrityConstraintViolation):
        return invalid(str(original).splitlines()[0])
    return None


# -- names -------------------------------------------------------------------------------


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
        raise StorageError(400, "InvalidKey", "Invalid key: not Unicode", "InvalidKey") from None
    if not 1 <= len(encoded) <= 1024:
        raise StorageError(400, "InvalidKey", "Invalid key: 1 to 1024 bytes", "InvalidKey")
    bad_character = any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in name)
    bad_segment = any(part in ("", ".", "..") for part in name.split("/"))
    if bad_character or bad_segment:
        raise StorageError(400, "InvalidKey", f"Invalid key: {name[:200]!r}", "InvalidKey")
    return name


def check_prefix(prefix: str) -> str:
    """A folder to list: '' (the top) or a key-like path; returned with its trailing '/'."""
    stripped = prefix.strip("/")
    return check_name(stripped) + "/" if stripped else ""


def quoted_key(bucket_id: str, name: str) -> str:
    return f"{quote(bucket_id, safe='')}/{quote(name, safe='/')}"


# -- files -------------------------------------------------------------------------------


class Upload:
    """Bytes being received into a temporary file, counted and hashed as they come."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.hash = hashlib.sha256()
        handle, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.path = Path(name)
        self.file: IO[bytes] = os.fdopen(handle, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        self.hash.update(chunk)
        self.file.write(chunk)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    @property
    def etag(self) -> str:
        return f'"{self.hash.hexdigest()}"'


class BlobStore:
    """Object files by version; nothing from a request ever names a path here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.temporary = root / "tmp"

    def ensure(self) -> None:
        for directory in (self.root, self.objects, self.temporary):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path_of(self, version: uuid.UUID) -> Path:
        hex_name = uuid.UUID(str(version)).hex
        path = (self.objects / hex_name[:2] / hex_name).resolve()
        if not path.is_relative_to(self.objects.resolve()):  # cannot happen; never trust it
            raise RuntimeError(f"object path {path} escapes {self.objects}")
        return path

    def new_upload(self, limit: int) -> Upload:
        self.ensure()
        return Upload(self.temporary, limit)

    def place(self, upload: Upload) -> uuid.UUID:
        """Move a finished upload to its version's path, atomically (rename)."""
        version = uuid.uuid4()
        target = self.path_of(version)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(upload.path, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return version

    def open(self, version: uuid.UUID) -> IO[bytes]:
        return self.path_of(version).open("rb")

    def remove(self, version: uuid.UUID) -> None:
        self.path_of(version).unlink(missing_ok=True)

    def sweep_temporary(self, older_than: float = TEMP_MAX_AGE_SECONDS) -> None:
        """Uploads abandoned by a crash."""
        if not self.temporary.is_dir():
            return
        cutoff = time.time() - older_than
        for entry in self.temporary.iterdir():
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink(missing_ok=True)


# -- context, identity, limits ---------------------------------------------------------


@dataclass
class StorageContext:
    settings: Settings
    engine: Engine
    store: BlobStore
    schema_ready: bool = False

    @classmethod
    def create(cls, settings: Settings, engine: Engine) -> StorageContext:
        return cls(settings, engine, BlobStore(settings.storage_dir or PLANWISE_HOME / "storage"))

    def check_schema(self) -> None:
        """Serve only a `storage` schema the Planwise migration made (not Supabase's)."""
        if self.schema_ready:
            return
        with unit_of_work(self.engine) as session:
            mark = session.execute(
                text(
                    "SELECT coalesce(obj_description(oid, 'pg_namespace'), '') "
                    "FROM pg_namespace WHERE nspname = 'storage'"
                )
            ).scalar()
        if mark is None:
            raise StorageError(503, "Unavailable", "no storage schema: run `planwise db migrate`")
        if mark != STORAGE_MARK:
            raise StorageError(
                501,
                "NotImplemented",
                "this database's storage schema belongs to Supabase Storage: use the "
                "project's Storage API (https://<project>.supabase.co/storage/v1)",
            )
        self.schema_ready = True


def resolve_user(session: Session, settings: Settings, token: str | None) -> int:
    """Set the bearer's user as the acting user of this transaction; refuse others."""
    if not token:
        raise StorageError(
            401, "Unauthorized", "no bearer token: send Authorization: Bearer <jwt>",
            "InvalidJWT", {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    try:
        identity = decode_access_token(settings, token)
    except InvalidToken as error:
        raise StorageError(
            401, "InvalidJWT", f"invalid token: {error}", "InvalidJWT",
            {"WWW-Authenticate": "Bearer"},
        ) from None  # fmt: skip
    user_id = identity if isinstance(identity, int) else user_for_supabase(session, identity)
    set_acting_user(session, user_id)
    active = session.execute(
        text('SELECT is_active FROM "user" WHERE id = :id'), {"id": user_id}
    ).scalar()
    if active is None:
        raise StorageError(401, "InvalidJWT", "the token's user no longer exists", "InvalidJWT")
    if not active:
        raise forbidden("account is deactivated")
    return user_id


@contextmanager
def acting(ctx: StorageContext, token: str | None) -> Iterator[tuple[Session, int]]:
    """One transaction as the bearer's user (RLS applies)."""
    ctx.check_schema()
    with unit_of_work(ctx.engine) as session:
        yield session, resolve_user(session, ctx.settings, token)


@contextmanager
def as_reader(ctx: StorageContext, user_id: int | None) -> Iterator[Session]:
    """One transaction as a known user, or as nobody (public objects only)."""
    ctx.check_schema()
    with unit_of_work(ctx.engine, user_id) as session:
        yield session


def _require_admin(session: Session) -> None:
    if not session.execute(text("SELECT planwise_acting_user_is_admin()")).scalar():
        raise forbidden("only administrators create, change or delete buckets")


def _matches(essence: str, patterns: list[str]) -> bool:
    return any(
        essence == pattern or (pattern.endswith("/*") and essence.startswith(pattern[:-1]))
        for pattern in patterns
    )


@dataclass(frozen=True)
class Target:
    """Where an upload goes and what it may be."""

    user_id: int
    bucket_id: str
    name: str
    max_bytes: int
    mime_types: list[str] | None

    def check_type(self, content_type: str, allowed: list[str]) -> str:
        """The content type, if the server and the bucket both allow it (else 415)."""
        essence = content_type.split(";", 1)[0].strip().lower()
        if not CONTENT_TYPE_TEXT.fullmatch(content_type) or not MIME_PATTERN.match(essence):
            raise unsupported_type(content_type[:100])
        if essence.endswith("/*") or not _matches(essence, [p.lower() for p in allowed]):
            raise unsupported_type(essence)
        if self.mime_types is not None and not _matches(essence, self.mime_types):
            raise unsupported_type(essence)
        return content_type


def _bucket_row(session: Session, bucket_id: str) -> Row[Any]:
    row = session.execute(
        text(
            "SELECT id, name, owner, public, file_size_limit, allowed_mime_types, created_at, "
            "updated_at FROM storage.buckets WHERE id = :id"
        ),
        {"id": bucket_id},
    ).first()
    if row is None:
        raise bucket_not_found()
    return row


def _target(
    ctx: StorageContext, session: Session, user_id: int, bucket_id: str, name: str
) -> Target:
    bucket = _bucket_row(session, check_bucket_id(bucket_id))
    limit = ctx.settings.storage_max_object_bytes
    if bucket.file_size_limit is not None:
        limit = min(limit, int(bucket.file_size_limit))
    return Target(user_id, bucket_id, check_name(name), limit, bucket.allowed_mime_types)


def prepare_upload(ctx: StorageContext, token: str | None, bucket_id: str, name: str) -> Target:
    with acting(ctx, token) as (session, user_id):
        return _target(ctx, session, user_id, bucket_id, name)


# -- buckets -----------------------------------------------------------------------------


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


def list_buckets(ctx: StorageContext, token: str | None) -> list[Bucket]:
    with acting(ctx, token) as (session, _user):
        rows = session.execute(
            text(
                "SELECT id, name, owner, public, file_size_limit, allowed_mime_types, "
                "created_at, updated_at FROM storage.buckets ORDER BY id"
            )
        )
        return [_bucket(row) for row in rows]


def get_bucket(ctx: StorageContext, token: str | None, bucket_id: str) -> Bucket:
    with acting(ctx, token) as (session, _user):
        return _bucket(_bucket_row(session, check_bucket_id(bucket_id)))


def _check_limit(ctx: StorageContext, limit: int | None) -> None:
    if limit is not None and limit > ctx.settings.storage_max_object_bytes:
        raise invalid(
            f"file_size_limit {limit} exceeds the server's maximum, "
            f"STORAGE_MAX_OBJECT_BYTES={ctx.settings.storage_max_object_bytes}"
        )


def create_bucket(ctx: StorageContext, token: str | None, body: BucketCreate) -> str:
    if body.id.lower() in RESERVED_BUCKET_IDS:
        raise invalid(f"bucket id {body.id!r} is reserved (a word of the storage paths)")
    _check_limit(ctx, body.file_size_limit if isinstance(body.file_size_limit, int) else None)
    with acting(ctx, token) as (session, user_id):
        _require_admin(session)
        try:
            with session.begin_nested():
                session.execute(
                    text(
                        "INSERT INTO storage.buckets (id, name, owner, public, file_size_limit, "
                        "allowed_mime_types) VALUES (:id, :name, :owner, :public, :limit, :types)"
                    ),
                    {
                        "id": body.id,
                        "name": body.name or body.id,
                        "owner": user_id,
                        "public": bool(body.public),
                        "limit": body.file_size_limit,
                        "types": body.allowed_mime_types,
                    },
                )
        except IntegrityError as error:
            if isinstance(error.orig, pg_errors.UniqueViolation):
                raise duplicate() from None
            raise
    return body.id


def update_bucket(
    ctx: StorageContext, token: str | None, bucket_id: str, body: BucketUpdate
) -> None:
    changes: dict[str, Any] = {
        key: getattr(body, key)
        for key in ("public", "file_size_limit", "allowed_mime_types")
        if key in body.model_fields_set
    }
    if changes.get("public") is None:
        changes.pop("public", None)
    _check_limit(ctx, changes.get("file_size_limit"))
    with acting(ctx, token) as (session, _user):
        _require_admin(session)
        _bucket_row(session, check_bucket_id(bucket_id))
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        session.execute(
            text(
                f"UPDATE storage.buckets SET {assignments}{', ' if changes else ''}"  # noqa: S608 - fixed column names
                "updated_at = now() WHERE id = :id"
            ),
            {**changes, "id": bucket_id},
        )


def empty_bucket(ctx: StorageContext, token: str | None, bucket_id: str) -> None:
    with acting(ctx, token) as (session, _user):
        _require_admin(session)
        _bucket_row(session, check_bucket_id(bucket_id))
        session.execute(
            text("DELETE FROM storage.objects WHERE bucket_id = :id"), {"id": bucket_id}
        )
    reap(ctx)


def delete_bucket(ctx: StorageContext, token: str | None, bucket_id: str) -> None:
    with acting(ctx, token) as (session, _user):
        _require_admin(session)
        _bucket_row(session, check_bucket_id(bucket_id))
        try:
            with session.begin_nested():
                session.execute(
                    text("DELETE FROM storage.buckets WHERE id = :id"), {"id": bucket_id}
                )
        except IntegrityError as error:
            if isinstance(error.orig, pg_errors.ForeignKeyViolation):
                raise StorageError(
                    409, "InvalidRequest", "The bucket you tried to delete is not empty",
                    "BucketNotEmpty",
                ) from None  # fmt: skip
            raise


# -- objects ----------------------------------------------------------------------------

OBJECT_COLUMNS = (
    "o.id, o.name, o.bucket_id, o.owner, o.version, o.metadata, o.user_metadata, "
    "o.created_at, o.updated_at"
)


def _find(session: Session, bucket_id: str, name: str) -> Row[Any] | None:
    """The object, if the acting user (or nobody) may see it; joined with its bucket."""
    return session.execute(
        text(
            f"SELECT {OBJECT_COLUMNS}, b.public FROM storage.objects o "  # noqa: S608 - constant
            "JOIN storage.buckets b ON b.id = o.bucket_id "
            "WHERE o.bucket_id = :bucket AND o.name = :name"
        ),
        {"bucket": bucket_id, "name": name},
    ).first()


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


def store_object(
    ctx: StorageContext,
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
    version = ctx.store.place(upload)
    metadata = orjson.dumps(_metadata(upload, mimetype, cache_seconds)).decode()
    extra = orjson.dumps(user_metadata).decode() if user_metadata is not None else None
    try:
        with as_reader(ctx, target.user_id) as session:
            object_id = _record(session, target, version, metadata, extra, upsert, must_exist)
    except BaseException:
        ctx.store.remove(version)
        raise
    reap(ctx)
    return UploadResult(Id=str(object_id), Key=f"{target.bucket_id}/{target.name}")


def _record(
    session: Session,
    target: Target,
    version: uuid.UUID,
    metadata: str,
    user_metadata: str | None,
    upsert: bool,
    must_exist: bool,
) -> uuid.UUID:
    params = {
        "bucket": target.bucket_id, "name": target.name, "owner": target.user_id,
        "version": version, "metadata": metadata, "user_metadata": user_metadata,
    }  # fmt: skip
    existing = _find(session, target.bucket_id, target.name)
    if existing is not None:
        if not (upsert or must_exist):
            raise duplicate()
        if existing.owner != target.user_id:
            raise forbidden("the object belongs to another user")
        replaced = session.execute(
            text(
                "UPDATE storage.objects SET version = :version, "
                "metadata = CAST(:metadata AS jsonb), "
                "user_metadata = coalesce(CAST(:user_metadata AS jsonb), user_metadata), "
                "updated_at = now() WHERE id = :id RETURNING id"
            ),
            {**params, "id": existing.id},
        ).scalar()
        if replaced is not None:
            return uuid.UUID(str(replaced))
    if must_exist:
        raise object_not_found()
    try:
        with session.begin_nested():
            created = session.execute(
                text(
                    "INSERT INTO storage.objects (bucket_id, name, owner, version, metadata, "
                    "user_metadata) VALUES (:bucket, :name, :owner, :version, "
                    "CAST(:metadata AS jsonb), CAST(:user_metadata AS jsonb)) RETURNING id"
                ),
                params,
            ).scalar_one()
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            raise duplicate() from None  # someone else's object, invisible to this user
        if isinstance(error.orig, pg_errors.ForeignKeyViolation):
            raise bucket_not_found() from None
        raise
    return uuid.UUID(str(created))


def reap(ctx: StorageContext) -> int:
    """Remove the files whose rows went away (after those deletions committed)."""
    with unit_of_work(ctx.engine) as session:
        versions = list(
            session.execute(text("DELETE FROM storage.deleted_files RETURNING version")).scalars()
        )
    for version in versions:
        ctx.store.remove(uuid.UUID(str(version)))
    ctx.store.sweep_temporary()
    return len(versions)


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


def _open(ctx: StorageContext, row: Row[Any] | None) -> Opened:
    if row is None:
        raise object_not_found()
    try:
        handle = ctx.store.open(uuid.UUID(str(row.version)))
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


def open_authenticated(ctx: StorageContext, token: str | None, bucket_id: str, name: str) -> Opened:
    with acting(ctx, token) as (session, _user):
        row = _find(session, check_bucket_id(bucket_id), check_name(name))
    return _open(ctx, row)


def open_public(ctx: StorageContext, bucket_id: str, name: str) -> Opened:
    """No token: RLS shows only objects of public buckets to nobody; checked again here."""
    with as_reader(ctx, None) as session:
        row = _find(session, check_bucket_id(bucket_id), check_name(name))
    if row is None or not row.public:
        raise object_not_found()
    return _open(ctx, row)


def object_info(ctx: StorageContext, token: str | None, bucket_id: str, name: str) -> ObjectInfo:
    with acting(ctx, token) as (session, _user):
        row = _find(session, check_bucket_id(bucket_id), check_name(name))
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


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


LIST_ORDER = {"name": "name", "created_at": "created_at", "updated_at": "updated_at",
              "last_accessed_at": "updated_at"}  # fmt: skip


def list_objects(
    ctx: StorageContext, token: str | None, bucket_id: str, body: ListRequest
) -> list[ListEntry]:
    """One folder level under `prefix`: files, and sub-folders as bare names."""
    prefix = check_prefix(body.prefix)
    if "\x00" in body.search:
        raise invalid("search must not contain NUL")
    column = LIST_ORDER[body.sortBy.column]
    order = "DESC" if body.sortBy.order == "desc" else "ASC"
    query = text(
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
    with acting(ctx, token) as (session, _user):
        _bucket_row(session, check_bucket_id(bucket_id))
        rows = session.execute(
            query,
            {
                "bucket": bucket_id, "pattern": _like_prefix(prefix), "skip": len(prefix) + 1,
                "search": _like_prefix(body.search), "limit": body.limit, "offset": body.offset,
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


def remove_objects(
    ctx: StorageContext, token: str | None, bucket_id: str, names: list[str]
) -> list[ObjectRow]:
    """Delete what the user may delete among `names`; the others are left, unreported."""
    checked = [check_name(name) for name in names]
    with acting(ctx, token) as (session, _user):
        rows = session.execute(
            text(
                "DELETE FROM storage.objects o WHERE o.bucket_id = :bucket "  # noqa: S608 - constant
                f"AND o.name = ANY(:names) RETURNING {OBJECT_COLUMNS}"
            ),
            {"bucket": check_bucket_id(bucket_id), "names": checked},
        ).all()
    reap(ctx)
    return [_object_row(row) for row in rows]


def remove_object(ctx: StorageContext, token: str | None, bucket_id: str, name: str) -> None:
    if not remove_objects(ctx, token, bucket_id, [name]):
        raise object_not_found()


def _sign(ctx: StorageContext, claims: dict[str, Any], seconds: int) -> str:
    now = int(time.time())
    return jwt.encode(
        {**claims, "iat": now, "exp": now + seconds},
        ctx.settings.jwt_secret.get_secret_value(),
        algorithm=ALGORITHM,
    )


def sign_urls(
    ctx: StorageContext, token: str | None, bucket_id: str, names: list[str], expires_in: int
) -> list[SignedURLItem]:
    """Download URLs for the objects the user may read now; the token names the signer,
    and downloads read as the signer, so RLS still decides when the URL is used."""
    check_bucket_id(bucket_id)
    items = []
    with acting(ctx, token) as (session, user_id):
        for name in names:
            if _find(session, bucket_id, check_name(name)) is None:
                error = "Either the object does not exist or you do not have access to it"
                items.append(SignedURLItem(error=error, path=name, signedURL=None))
                continue
            claims = {"url": f"{bucket_id}/{name}", "signer": user_id, "aud": DOWNLOAD_AUDIENCE}
            signed = _sign(ctx, claims, expires_in)
            url = f"/object/sign/{quoted_key(bucket_id, name)}?token={signed}"
            items.append(SignedURLItem(error=None, path=name, signedURL=url))
    return items


def _verify(
    ctx: StorageContext, token: str | None, audience: str, bucket_id: str, name: str
) -> dict[str, Any]:
    if not token:
        raise StorageError(400, "InvalidJWT", "this URL needs its token (?token=…)", "InvalidJWT")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            ctx.settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "url", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise StorageError(400, "InvalidJWT", "jwt expired", "InvalidJWT") from None
    except jwt.PyJWTError as error:
        raise StorageError(400, "InvalidJWT", f"invalid token: {error}", "InvalidJWT") from None
    if claims["url"] != f"{bucket_id}/{name}":
        raise StorageError(
            400, "InvalidSignature", "The url does not match the signature", "InvalidSignature"
        )
    return claims


def open_signed(ctx: StorageContext, token: str | None, bucket_id: str, name: str) -> Opened:
    claims = _verify(ctx, token, DOWNLOAD_AUDIENCE, check_bucket_id(bucket_id), check_name(name))
    signer = claims.get("signer")
    if not isinstance(signer, int):
        raise StorageError(400, "InvalidJWT", "invalid token: no signer", "InvalidJWT")
    with as_reader(ctx, signer) as session:
        row = _find(session, bucket_id, name)
    return _open(ctx, row)


def signed_upload_url(
    ctx: StorageContext, token: str | None, bucket_id: str, name: str, upsert: bool
) -> SignedUploadURL:
    """A URL anyone holding it may upload one object through, in the signer's name."""
    with acting(ctx, token) as (session, user_id):
        _target(ctx, session, user_id, bucket_id, name)
    claims = {"url": f"{bucket_id}/{name}", "owner": user_id, "upsert": upsert,
              "aud": UPLOAD_AUDIENCE}  # fmt: skip
    signed = _sign(ctx, claims, SIGNED_UPLOAD_SECONDS)
    return SignedUploadURL(
        url=f"/object/upload/sign/{quoted_key(bucket_id, name)}?token={signed}", token=signed
    )


def prepare_signed_upload(
    ctx: StorageContext, token: str | None, bucket_id: str, name: str
) -> tuple[Target, bool]:
    claims = _verify(ctx, token, UPLOAD_AUDIENCE, check_bucket_id(bucket_id), check_name(name))
    owner = claims.get("owner")
    if not isinstance(owner, int):
        raise StorageError(400, "InvalidJWT", "invalid token: no owner", "InvalidJWT")
    with as_reader(ctx, owner) as session:
        return _target(ctx, session, owner, bucket_id, name), bool(claims.get("upsert"))


def move_object(ctx: StorageContext, token: str | None, body: MoveRequest) -> None:
    """Rename (the file stays: its path is the version, not the name)."""
    destination = body.destinationBucket or body.bucketId
    source_name, target_name = check_name(body.sourceKey), check_name(body.destinationKey)
    with acting(ctx, token) as (session, user_id):
        _bucket_row(session, check_bucket_id(destination))
        row = _find(session, check_bucket_id(body.bucketId), source_name)
        if row is None:
            raise object_not_found()
        if row.owner != user_id:
            raise forbidden("the object belongs to another user")
        try:
            with session.begin_nested():
                session.execute(
                    text(
                        "UPDATE storage.objects SET bucket_id = :bucket, name = :name, "
                        "updated_at = now() WHERE id = :id"
                    ),
                    {"bucket": destination, "name": target_name, "id": row.id},
                )
        except IntegrityError as error:
            if isinstance(error.orig, pg_errors.UniqueViolation):
                raise duplicate() from None
            raise


def copy_object(ctx: StorageContext, token: str | None, body: MoveRequest) -> UploadResult:
    """A new object (a copy of the bytes) owned by the user, from one they may read."""
    destination = body.destinationBucket or body.bucketId
    with acting(ctx, token) as (session, user_id):
        source = _find(session, check_bucket_id(body.bucketId), check_name(body.sourceKey))
        target = _target(ctx, session, user_id, destination, body.destinationKey)
    opened = _open(ctx, source)
    target.check_type(opened.mimetype, ctx.settings.storage_allowed_mime_types)
    upload = ctx.store.new_upload(target.max_bytes)
    try:
        with opened.file:
            while chunk := opened.file.read(CHUNK_BYTES):
                upload.write(chunk)
        upload.finish()
    except BaseException:
        upload.discard()
        raise
    cache = parse_cache_control(opened.cache_control)
    return store_object(
        ctx, target, upload, opened.mimetype, cache_seconds=cache, user_metadata=None,
        upsert=False,
    )  # fmt: skip
