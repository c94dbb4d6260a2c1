"""HTTP bodies of `/storage/v1`, shaped as Supabase Storage's so `storage3` parses them.

Field names follow Supabase's wire format, camelCase where it has it (`expiresIn`,
`signedURL`, `sortBy`, `Key`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

BUCKET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
MAX_SIGNED_URL_SECONDS = 365 * 24 * 3600
MIME_PATTERN = re.compile(
    r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/([a-z0-9][a-z0-9!#$&^_.+-]{0,126}|\*)$"
)
SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2,
              "G": 1024**3, "GB": 1024**3}  # fmt: skip
MAX_BUCKET_LIMIT = 5 * 1024**4


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and JSON can smuggle in lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode") from None
    return value


Text = Annotated[str, AfterValidator(_text)]
BucketId = Annotated[str, Field(pattern=BUCKET_ID_PATTERN, max_length=63)]
ObjectName = Annotated[Text, Field(min_length=1, max_length=1024)]
ExpiresIn = Annotated[int, Field(ge=1, le=MAX_SIGNED_URL_SECONDS)]


class StorageErrorBody(BaseModel):
    """Supabase Storage's error shape: `statusCode` is a string, `error` a short code."""

    statusCode: str
    error: str
    code: str
    message: str


class Bucket(BaseModel):
    id: str
    name: str
    owner: str
    public: bool
    file_size_limit: int | None
    allowed_mime_types: list[str] | None
    created_at: datetime
    updated_at: datetime
    type: Literal["STANDARD"] = "STANDARD"


def parse_size(value: int | str | None) -> int | None:
    """A byte count: 1048576, "1048576", "100KB", "1MB", "1GB"."""
    if value is None:
        return None
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d{1,13})\s*([KMG]?B?)\s*", value.upper())
        if match is None:
            raise ValueError("a size is a number of bytes, or a number with KB, MB or GB")
        size = int(match[1]) * SIZE_UNITS[match[2]]
    if not 1 <= size <= MAX_BUCKET_LIMIT:
        raise ValueError(f"a size is between 1 byte and {MAX_BUCKET_LIMIT} bytes")
    return size


def check_mime_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    cleaned = [item.strip().lower() for item in value]
    bad = [item for item in cleaned if not MIME_PATTERN.match(item)]
    if bad:
        raise ValueError(f"not MIME types (type/subtype or type/*): {bad}")
    return cleaned


class BucketOptions(BaseModel):
    public: bool | None = None
    file_size_limit: int | Text | None = None
    allowed_mime_types: Annotated[list[Text], Field(max_length=100)] | None = None

    @field_validator("file_size_limit")
    @classmethod
    def _size(cls, value: int | str | None) -> int | None:
        return parse_size(value)

    @field_validator("allowed_mime_types")
    @classmethod
    def _mime(cls, value: list[str] | None) -> list[str] | None:
        return check_mime_types(value)


class BucketCreate(BucketOptions):
    id: BucketId
    name: Annotated[Text, Field(min_length=1, max_length=100)] | None = None


class BucketUpdate(BucketOptions):
    """`storage3` also sends `id` and `name`; a bucket keeps both."""

    model_config = ConfigDict(extra="ignore")


class Message(BaseModel):
    message: str


class CreatedBucket(BaseModel):
    name: str


class SortBy(BaseModel):
    column: Literal["name", "created_at", "updated_at", "last_accessed_at"] = "name"
    order: Literal["asc", "desc"] = "asc"


class ListRequest(BaseModel):
    prefix: Annotated[Text, Field(max_length=1024)] = ""
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    sortBy: SortBy = Field(default_factory=SortBy)
    search: Annotated[Text, Field(max_length=1024)] = ""


class ListEntry(BaseModel):
    """A file (with id and metadata) or a folder (name only, the rest null)."""

    name: str
    id: str | None
    updated_at: datetime | None
    created_at: datetime | None
    last_accessed_at: datetime | None
    metadata: dict[str, Any] | None


class ObjectRow(BaseModel):
    id: str
    name: str
    bucket_id: str
    owner: str
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None
    metadata: dict[str, Any]


class ObjectInfo(BaseModel):
    id: str
    name: str
    version: str
    bucket_id: str
    size: int
    content_type: str
    cache_control: str
    etag: str
    metadata: dict[str, Any] | None
    created_at: datetime
    last_modified: datetime


class RemoveRequest(BaseModel):
    prefixes: Annotated[list[ObjectName], Field(min_length=1, max_length=1000)]


class SignRequest(BaseModel):
    expiresIn: ExpiresIn
    download: Text | bool | None = None
    transform: dict[str, Any] | None = None


class SignedURL(BaseModel):
    signedURL: str


class SignManyRequest(BaseModel):
    expiresIn: ExpiresIn
    paths: Annotated[list[ObjectName], Field(min_length=1, max_length=1000)]
    download: Text | bool | None = None


class SignedURLItem(BaseModel):
    error: str | None
    path: str
    signedURL: str | None


class MoveRequest(BaseModel):
    bucketId: BucketId
    sourceKey: ObjectName
    destinationKey: ObjectName
    destinationBucket: BucketId | None = None


class UploadResult(BaseModel):
    Id: str
    Key: str


class SignedUploadURL(BaseModel):
    url: str
    token: str
