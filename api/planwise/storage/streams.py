"""Bytes in and out over HTTP: request bodies into temporary files, files into responses.

Uploads come multipart (as `storage3` sends them) or as a raw body, read straight from
ASGI so that limits apply while they arrive and the rest can be drained after a 413.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from typing import IO, Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from planwise.storage.blobs import CHUNK_BYTES, BlobStore, Upload
from planwise.storage.errors import StorageError, invalid, too_large
from planwise.storage.objects import Opened
from planwise.storage.uploads import (
    Target,
    canonical_type,
    parse_cache_control,
    parse_user_metadata,
)

MULTIPART_SLACK = 64 * 1024
"""Bytes a multipart body may hold beyond its file: boundaries, part headers, fields."""
DRAIN_LIMIT = 64 * 1024 * 1024
"""After a 413, read (and drop) up to this much more, so the client sees the answer."""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Objects come from users and are served from the API's origin: never run them.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def _attachment(filename: str) -> str:
    plain = re.sub(r"[^A-Za-z0-9._ -]", "_", filename)[:200] or "download"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def file_response(opened: Opened, request: Request, download: str | None) -> Response:
    """The object's bytes (streamed, closing the file at the end), or a 304."""
    headers = {
        "ETag": opened.etag,
        "Cache-Control": opened.cache_control,
        "Last-Modified": format_datetime(opened.last_modified.astimezone(UTC), usegmt=True),
        **SECURITY_HEADERS,
    }
    if opened.etag and request.headers.get("if-none-match") == opened.etag:
        opened.file.close()
        return Response(status_code=304, headers=headers)
    # Only the canonical type is served, also of objects stored before it was checked;
    # anything but an image is a download, never a page of the API's origin.
    mimetype = canonical_type(opened.mimetype) or "application/octet-stream"
    if download is not None or not _inline(mimetype):
        headers["Content-Disposition"] = _attachment(download or opened.name.rsplit("/", 1)[-1])
    headers["Content-Length"] = str(os.fstat(opened.file.fileno()).st_size)
    return StreamingResponse(_chunks(opened.file), media_type=mimetype, headers=headers)


def _inline(mimetype: str) -> bool:
    """Raster images are shown in place; SVG (which can hold scripts) and the rest are not."""
    return mimetype.startswith("image/") and mimetype != "image/svg+xml"


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
                raise invalid("the client disconnected")
            chunk: bytes = message.get("body", b"")
            self.done = not message.get("more_body", False)
            self.received += len(chunk)
            if self.received > self.cap:
                raise too_large(self.limit)
            if chunk:
                yield chunk

    async def drain(self) -> None:
        while not self.done and self.received <= DRAIN_LIMIT:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            self.received += len(message.get("body", b""))
            self.done = not message.get("more_body", False)


@dataclass
class Received:
    """An uploaded file, finished in its temporary file, and what came with it."""

    upload: Upload
    mimetype: str
    cache_seconds: int
    user_metadata: dict[str, Any] | None


async def receive(
    request: Request, store: BlobStore, target: Target, allowed: list[str]
) -> Received:
    """The uploaded file (multipart, or a raw body) in a temporary file, limits enforced;
    a failed upload leaves no temporary file behind."""
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    body = Body(request, target.max_bytes + (MULTIPART_SLACK if multipart else 0), target.max_bytes)
    declared = request.headers.get("content-length", "")
    try:
        if declared.isdigit() and int(declared) > body.cap:
            raise too_large(target.max_bytes)
        if multipart:
            return await _receive_multipart(request, store, target, body, allowed)
        mimetype = target.check_type(content_type or "application/octet-stream", allowed)
        cache = parse_cache_control(request.headers.get("cache-control"))
        with store.new_upload(target.max_bytes) as upload:
            async for chunk in body.chunks():
                upload.write(chunk)
            await run_in_threadpool(upload.finish)
        return Received(upload, mimetype, cache, None)
    except StorageError as error:
        if error.status == 413:
            await body.drain()
        raise


async def _receive_multipart(
    request: Request, store: BlobStore, target: Target, body: Body, allowed: list[str]
) -> Received:
    parser = MultiPartParser(request.headers, body.chunks(), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise invalid(f"multipart body: {error.message}") from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if len(files) != 1:
            raise invalid("send exactly one file part")
        part = files[0]
        mimetype = target.check_type(part.content_type or "application/octet-stream", allowed)
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        cache = parse_cache_control(fields.get("cacheControl"))
        user_metadata = parse_user_metadata(fields.get("metadata"))
        with store.new_upload(target.max_bytes) as upload:
            await run_in_threadpool(upload.copy_from, part.file)
        return Received(upload, mimetype, cache, user_metadata)
    finally:
        await form.close()
