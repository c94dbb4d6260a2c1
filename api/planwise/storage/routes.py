"""`/storage/v1`: Supabase Storage's REST paths, as the `storage3` client calls them.

Every error, including invalid input, is answered in Storage's shape
(`{"statusCode", "error", "code", "message"}`), which `storage3` turns into a
`StorageApiError`. Routes whose bodies are raw bytes (uploads, downloads) are left out of
the OpenAPI schema; the JSON ones are in it, with their error responses declared.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from datetime import UTC
from email.utils import format_datetime
from typing import IO, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from planwise.deps import Responses
from planwise.storage import service
from planwise.storage.models import (
    Bucket,
    BucketCreate,
    BucketUpdate,
    CreatedBucket,
    ListEntry,
    ListRequest,
    Message,
    MoveRequest,
    ObjectInfo,
    ObjectRow,
    RemoveRequest,
    SignedUploadURL,
    SignedURL,
    SignedURLItem,
    SignManyRequest,
    SignRequest,
    StorageErrorBody,
    UploadResult,
)
from planwise.storage.service import StorageContext, StorageError, Target, Upload

PREFIX = "/storage/v1"
MULTIPART_SLACK = 64 * 1024
"""Bytes a multipart body may hold beyond its file: boundaries, part headers, fields."""
DRAIN_LIMIT = 64 * 1024 * 1024
"""After a 413, read (and drop) up to this much more, so the client sees the answer."""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Objects come from users and are served from the API's origin: never run them.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


class StorageRoute(APIRoute):
    """Answers StorageError, invalid input and refused statements in Storage's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def storage_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except StorageError as error:
                return error.response()
            except RequestValidationError as error:
                first = error.errors()[0] if error.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ()))
                return service.invalid(f"{where}: {first.get('msg', 'invalid input')}").response()
            except DBAPIError as error:
                refusal = service.database_refusal(error)
                if refusal is None:
                    raise
                return refusal.response()

        return storage_handler


ERRORS: Responses = {
    "4XX": {"model": StorageErrorBody, "description": "refused; `error` and `code` say why"},
    501: {"model": StorageErrorBody, "description": "the storage schema is Supabase's"},
    503: {"description": "database unavailable or storage schema missing"},
}

router = APIRouter(prefix=PREFIX, tags=["storage"], route_class=StorageRoute, responses=ERRORS)
bearer_scheme = HTTPBearer(auto_error=False, description="a Planwise or Supabase Auth JWT")


def storage_context(request: Request) -> StorageContext:
    context: StorageContext | None = getattr(request.app.state, "storage", None)
    if context is None:
        context = StorageContext.create(request.app.state.settings, request.app.state.engine)
        request.app.state.storage = context
    return context


def bearer_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str | None:
    """`Authorization: Bearer <jwt>`, else the `apikey` header Supabase clients also send."""
    if credentials is not None:
        return credentials.credentials
    return request.headers.get("apikey")


Context = Annotated[StorageContext, Depends(storage_context)]
Token = Annotated[str | None, Depends(bearer_token)]
ObjectPath = Annotated[
    str, PathParam(min_length=1, max_length=1024, description="object name; may contain '/'")
]


# -- buckets ---------------------------------------------------------------------------


@router.get("/bucket")
def list_buckets(context: Context, token: Token) -> list[Bucket]:
    """Every bucket (any signed-in user may see them)."""
    return service.list_buckets(context, token)


@router.get("/bucket/{bucket_id}")
def get_bucket(context: Context, token: Token, bucket_id: str) -> Bucket:
    return service.get_bucket(context, token, bucket_id)


@router.post("/bucket")
def create_bucket(context: Context, token: Token, body: BucketCreate) -> CreatedBucket:
    """Administrators only. `public` buckets are readable by anyone, token or not."""
    return CreatedBucket(name=service.create_bucket(context, token, body))


@router.put("/bucket/{bucket_id}")
def update_bucket(context: Context, token: Token, bucket_id: str, body: BucketUpdate) -> Message:
    service.update_bucket(context, token, bucket_id, body)
    return Message(message="Successfully updated")


@router.post("/bucket/{bucket_id}/empty")
def empty_bucket(context: Context, token: Token, bucket_id: str) -> Message:
    service.empty_bucket(context, token, bucket_id)
    return Message(message="Successfully emptied")


@router.delete("/bucket/{bucket_id}")
def delete_bucket(context: Context, token: Token, bucket_id: str) -> Message:
    """Only an empty bucket (409 otherwise)."""
    service.delete_bucket(context, token, bucket_id)
    return Message(message="Successfully deleted")


# -- objects: JSON operations ---------------------------------------------------------------


@router.post("/object/list/{bucket_id}")
def list_objects(
    context: Context, token: Token, bucket_id: str, body: ListRequest
) -> list[ListEntry]:
    """One folder level: files, then sub-folders as entries whose id is null."""
    return service.list_objects(context, token, bucket_id, body)


@router.post("/object/sign/{bucket_id}")
def sign_many(
    context: Context, token: Token, bucket_id: str, body: SignManyRequest
) -> list[SignedURLItem]:
    return service.sign_urls(context, token, bucket_id, body.paths, body.expiresIn)


@router.post("/object/sign/{bucket_id}/{path:path}")
def sign_one(
    context: Context, token: Token, bucket_id: str, path: ObjectPath, body: SignRequest
) -> SignedURL:
    """A download URL valid `expiresIn` seconds, for an object you may read."""
    item = service.sign_urls(context, token, bucket_id, [path], body.expiresIn)[0]
    if item.signedURL is None:
        raise service.object_not_found()
    return SignedURL(signedURL=item.signedURL)


@router.post("/object/upload/sign/{bucket_id}/{path:path}")
def sign_upload(
    context: Context,
    token: Token,
    bucket_id: str,
    path: ObjectPath,
    x_upsert: Annotated[str | None, Header()] = None,
) -> SignedUploadURL:
    """An upload URL (two hours) through which anyone may upload this object in your name."""
    upsert = (x_upsert or "").lower() == "true"
    return service.signed_upload_url(context, token, bucket_id, path, upsert)


@router.post("/object/move")
def move_object(context: Context, token: Token, body: MoveRequest) -> Message:
    service.move_object(context, token, body)
    return Message(message="Successfully moved")


@router.post("/object/copy")
def copy_object(context: Context, token: Token, body: MoveRequest) -> UploadResult:
    return service.copy_object(context, token, body)


@router.get("/object/info/{bucket_id}/{path:path}")
def object_info(context: Context, token: Token, bucket_id: str, path: ObjectPath) -> ObjectInfo:
    return service.object_info(context, token, bucket_id, path)


@router.delete("/object/{bucket_id}")
def remove_objects(
    context: Context, token: Token, bucket_id: str, body: RemoveRequest
) -> list[ObjectRow]:
    """Deletes those of `prefixes` you may delete; returns them."""
    return service.remove_objects(context, token, bucket_id, body.prefixes)


@router.delete("/object/{bucket_id}/{path:path}")
def remove_object(context: Context, token: Token, bucket_id: str, path: ObjectPath) -> Message:
    service.remove_object(context, token, bucket_id, path)
    return Message(message="Successfully deleted")


# -- objects: bytes in and out (not in the OpenAPI schema) -------------------------------


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(service.CHUNK_BYTES):
            yield chunk


def _attachment(filename: str) -> str:
    plain = re.sub(r"[^A-Za-z0-9._ -]", "_", filename)[:200] or "download"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def file_response(opened: service.Opened, request: Request, download: str | None) -> Response:
    headers = {
        "ETag": opened.etag,
        "Cache-Control": opened.cache_control,
        "Last-Modified": format_datetime(opened.last_modified.astimezone(UTC), usegmt=True),
        **SECURITY_HEADERS,
    }
    if opened.etag and request.headers.get("if-none-match") == opened.etag:
        opened.file.close()
        return Response(status_code=304, headers=headers)
    if download is not None:
        headers["Content-Disposition"] = _attachment(download or opened.name.rsplit("/", 1)[-1])
    headers["Content-Length"] = str(os.fstat(opened.file.fileno()).st_size)
    return StreamingResponse(_chunks(opened.file), media_type=opened.mimetype, headers=headers)


Download = Annotated[str | None, Query(description="serve as an attachment named so")]


@router.get("/object/public/{bucket_id}/{path:path}", include_in_schema=False)
async def download_public(
    request: Request, context: Context, bucket_id: str, path: str, download: Download = None
) -> Response:
    """Objects of public buckets, to anyone."""
    opened = await run_in_threadpool(service.open_public, context, bucket_id, path)
    return file_response(opened, request, download)


@router.get("/object/sign/{bucket_id}/{path:path}", include_in_schema=False)
async def download_signed(
    request: Request, context: Context, bucket_id: str, path: str,
    token: Annotated[str | None, Query()] = None, download: Download = None,
) -> Response:  # fmt: skip
    opened = await run_in_threadpool(service.open_signed, context, token, bucket_id, path)
    return file_response(opened, request, download)


# The generic path last: decorators register bottom-up, and routes match in order.
@router.get("/object/{bucket_id}/{path:path}", include_in_schema=False)
@router.get("/object/authenticated/{bucket_id}/{path:path}", include_in_schema=False)
async def download(
    request: Request,
    context: Context,
    token: Token,
    bucket_id: str,
    path: str,
    download: Download = None,
) -> Response:
    opened = await run_in_threadpool(service.open_authenticated, context, token, bucket_id, path)
    return file_response(opened, request, download)


class Body:
    """The request body, read straight from ASGI so that it can be drained after a 413."""

    def __init__(self, request: Request, cap: int, limit: int) -> None:
        self.receive = request.receive
        self.cap = cap
        self.limit = limit
        self.received = 0
        self.done = False

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        while not self.done:
            message = await self.receive()
            if message["type"] != "http.request":
                raise service.invalid("the client disconnected")
            chunk: bytes = message.get("body", b"")
            self.done = not message.get("more_body", False)
            self.received += len(chunk)
            if self.received > self.cap:
                raise service.too_large(self.limit)
            if chunk:
                yield chunk

    async def drain(self) -> None:
        while not self.done and self.received <= DRAIN_LIMIT:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            self.received += len(message.get("body", b""))
            self.done = not message.get("more_body", False)


def _copy(source: IO[bytes], upload: Upload) -> None:
    while chunk := source.read(service.CHUNK_BYTES):
        upload.write(chunk)
    upload.finish()


async def _receive(
    request: Request, context: StorageContext, target: Target
) -> tuple[Upload, str, int, dict[str, Any] | None]:
    """The uploaded file (multipart, as storage3 sends it, or a raw body) in a temporary
    file, with its content type, cache seconds and user metadata; limits enforced."""
    allowed = context.settings.storage_allowed_mime_types
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    body = Body(request, target.max_bytes + (MULTIPART_SLACK if multipart else 0), target.max_bytes)
    declared = request.headers.get("content-length", "")
    try:
        if declared.isdigit() and int(declared) > body.cap:
            raise service.too_large(target.max_bytes)
        if multipart:
            return await _receive_multipart(request, context, target, body, allowed)
        mimetype = target.check_type(content_type or "application/octet-stream", allowed)
        cache = service.parse_cache_control(request.headers.get("cache-control"))
        upload = context.store.new_upload(target.max_bytes)
        try:
            async for chunk in body.chunks():
                upload.write(chunk)
            await run_in_threadpool(upload.finish)
        except BaseException:
            upload.discard()
            raise
        return upload, mimetype, cache, None
    except StorageError as error:
        if error.status == 413:
            await body.drain()
        raise


async def _receive_multipart(
    request: Request, context: StorageContext, target: Target, body: Body, allowed: list[str]
) -> tuple[Upload, str, int, dict[str, Any] | None]:
    parser = MultiPartParser(request.headers, body.chunks(), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise service.invalid(f"multipart body: {error.message}") from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if len(files) != 1:
            raise service.invalid("send exactly one file part")
        part = files[0]
        mimetype = target.check_type(part.content_type or "application/octet-stream", allowed)
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        cache = service.parse_cache_control(fields.get("cacheControl"))
        user_metadata = service.parse_user_metadata(fields.get("metadata"))
        upload = context.store.new_upload(target.max_bytes)
        try:
            await run_in_threadpool(_copy, part.file, upload)
        except BaseException:
            upload.discard()
            raise
        return upload, mimetype, cache, user_metadata
    finally:
        await form.close()


async def _upload(
    request: Request,
    context: StorageContext,
    target: Target,
    *,
    upsert: bool,
    must_exist: bool = False,
) -> UploadResult:
    upload, mimetype, cache, user_metadata = await _receive(request, context, target)
    try:
        return await run_in_threadpool(
            lambda: service.store_object(
                context, target, upload, mimetype, cache_seconds=cache,
                user_metadata=user_metadata, upsert=upsert, must_exist=must_exist,
            )
        )  # fmt: skip
    finally:
        upload.path.unlink(missing_ok=True)  # gone already once placed


@router.put("/object/upload/sign/{bucket_id}/{path:path}", include_in_schema=False)
async def upload_signed(
    request: Request, context: Context, bucket_id: str, path: str,
    token: Annotated[str | None, Query()] = None,
) -> UploadResult:  # fmt: skip
    target, upsert = await run_in_threadpool(
        service.prepare_signed_upload, context, token, bucket_id, path
    )
    return await _upload(request, context, target, upsert=upsert)


@router.post("/object/{bucket_id}/{path:path}", include_in_schema=False)
async def upload_object(
    request: Request, context: Context, token: Token, bucket_id: str, path: str,
    x_upsert: Annotated[str | None, Header()] = None,
) -> UploadResult:  # fmt: skip
    """A new object; with `x-upsert: true`, or a new version of your own."""
    target = await run_in_threadpool(service.prepare_upload, context, token, bucket_id, path)
    upsert = (x_upsert or "").lower() == "true"
    return await _upload(request, context, target, upsert=upsert)


@router.put("/object/{bucket_id}/{path:path}", include_in_schema=False)
async def update_object(
    request: Request, context: Context, token: Token, bucket_id: str, path: str
) -> UploadResult:
    """A new version of an existing object of yours."""
    target = await run_in_threadpool(service.prepare_upload, context, token, bucket_id, path)
    return await _upload(request, context, target, upsert=True, must_exist=True)
