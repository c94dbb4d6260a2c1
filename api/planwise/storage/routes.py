"""`/storage/v1`: Supabase Storage's REST paths, as the `storage3` client calls them.

One transaction per request, as everywhere: `StorageSession` opens it and commits it when
the path operation returns (before the response is sent), or rolls it back on an error;
`Acting` makes the caller act in it (RLS sees a user; the service_role key bypasses RLS),
and the services only flush. Routes that delete or replace objects take `WritingSession`:
the files of the versions they released are removed right after the commit. A download's
file is opened in the transaction and streamed after it.

Every error, including invalid input, is answered in Storage's shape
(`{"statusCode", "error", "code", "message"}`), which `storage3` turns into a
`StorageApiError`. Routes whose bodies are raw bytes (uploads, downloads) are left out of
the OpenAPI schema; the JSON ones are in it, with their error responses declared.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from planwise.config import PLANWISE_HOME, Settings
from planwise.db.session import unit_of_work
from planwise.deps import Responses, SettingsDep
from planwise.storage import buckets, objects, queries, signed, uploads
from planwise.storage.actors import Actor, act
from planwise.storage.blobs import BlobStore
from planwise.storage.errors import (
    StorageError,
    database_refusal,
    invalid,
    object_not_found,
    token_refusal,
)
from planwise.storage.schemas import (
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
from planwise.storage.streams import file_response, receive
from planwise.users.service import TokenRefused, resolve_caller

PREFIX = "/storage/v1"


def storage_error_response(_request: Request, error: Exception) -> JSONResponse:
    """The app's handler of `StorageError` (installed by `planwise.app`)."""
    assert isinstance(error, StorageError)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class StorageRoute(APIRoute):
    """Turns invalid input and refused statements into `StorageError`.

    Raised, not answered here: the error must pass the request's dependencies on its way
    out, so that the transaction rolls back; `storage_error_response` answers it.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def storage_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                first = error.errors()[0] if error.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ()))
                raise invalid(f"{where}: {first.get('msg', 'invalid input')}") from None
            except DBAPIError as error:
                refusal = database_refusal(error)
                if refusal is None:
                    raise
                raise refusal from None

        return storage_handler


ERRORS: Responses = {
    "4XX": {"model": StorageErrorBody, "description": "refused; `error` and `code` say why"},
    501: {"model": StorageErrorBody, "description": "the storage schema is Supabase's"},
    503: {"description": "database unavailable or storage schema missing"},
}

router = APIRouter(prefix=PREFIX, tags=["storage"], route_class=StorageRoute, responses=ERRORS)
bearer_scheme = HTTPBearer(auto_error=False, description="a Planwise or Supabase Auth JWT")


@dataclass
class StorageState:
    """What the storage routes keep for the app's life (`app.state.storage`)."""

    store: BlobStore
    schema_checked: bool = False


def storage_state(request: Request) -> StorageState:
    state: StorageState | None = getattr(request.app.state, "storage", None)
    if state is None:
        settings: Settings = request.app.state.settings
        state = StorageState(BlobStore(settings.storage_dir or PLANWISE_HOME / "storage"))
        request.app.state.storage = state
    return state


State = Annotated[StorageState, Depends(storage_state)]


def blob_store(state: State) -> BlobStore:
    return state.store


Store = Annotated[BlobStore, Depends(blob_store)]

RELEASES_FILES = "planwise.storage.releases_files"
"""`Session.info` key: the route deletes or replaces objects (see `writing_session`)."""


def storage_session(
    request: Request, state: State, background: BackgroundTasks
) -> Iterator[Session]:
    """The request's one transaction, as `SessionDep`'s (committed when the path operation
    returns, before the response is sent; rolled back on an error), on a `storage` schema
    known to be ours.

    For a route that deleted or replaced objects, the versions released leave the queue in
    the transaction, and their files are removed right after it committed, so they are gone
    when the client reads the answer. Stale temporary files are swept by a background task
    after the response, when `BlobStore.sweep_due`.
    """
    with unit_of_work(request.app.state.engine) as session:
        if not state.schema_checked:
            queries.check_schema(session)
            state.schema_checked = True
        yield session
        releases_files = session.info.get(RELEASES_FILES, False)
        released = queries.release_files(session) if releases_files else []
    for version in released:
        state.store.remove(version)
    if releases_files and state.store.sweep_due():
        background.add_task(state.store.sweep_temporary)


StorageSession = Annotated[Session, Depends(storage_session, scope="function")]


def writing_session(session: StorageSession) -> Session:
    """The request's transaction, for a route that deletes or replaces objects."""
    session.info[RELEASES_FILES] = True
    return session


WritingSession = Annotated[Session, Depends(writing_session)]


def bearer_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str | None:
    """`Authorization: Bearer <jwt>`, else the `apikey` header Supabase clients also send."""
    if credentials is not None:
        return credentials.credentials
    return request.headers.get("apikey")


Token = Annotated[str | None, Depends(bearer_token)]


def acting(session: StorageSession, settings: SettingsDep, token: Token) -> Actor:
    """The caller, acting in the request's transaction (`planwise.storage.actors`); a
    refused token is answered in Storage's shape."""
    try:
        caller = resolve_caller(session, settings, token)
    except TokenRefused as refused:
        raise token_refusal(refused) from None
    return act(session, caller)


Acting = Annotated[Actor, Depends(acting)]
ObjectPath = Annotated[
    str, PathParam(min_length=1, max_length=1024, description="object name; may contain '/'")
]


# -- buckets ---------------------------------------------------------------------------


@router.get("/bucket")
def list_buckets(session: StorageSession, actor: Acting) -> list[Bucket]:
    """Every bucket (any signed-in user may see them)."""
    return buckets.list_buckets(session)


@router.get("/bucket/{bucket_id}")
def get_bucket(session: StorageSession, actor: Acting, bucket_id: str) -> Bucket:
    return buckets.get_bucket(session, bucket_id)


@router.post("/bucket")
def create_bucket(
    session: StorageSession, settings: SettingsDep, actor: Acting, body: BucketCreate
) -> CreatedBucket:
    """Administrators only. `public` buckets are readable by anyone, token or not."""
    return CreatedBucket(name=buckets.create_bucket(session, settings, actor, body))


@router.put("/bucket/{bucket_id}")
def update_bucket(
    session: StorageSession, settings: SettingsDep, actor: Acting, bucket_id: str,
    body: BucketUpdate,
) -> Message:  # fmt: skip
    buckets.update_bucket(session, settings, actor, bucket_id, body)
    return Message(message="Successfully updated")


@router.post("/bucket/{bucket_id}/empty")
def empty_bucket(session: WritingSession, actor: Acting, bucket_id: str) -> Message:
    buckets.empty_bucket(session, actor, bucket_id)
    return Message(message="Successfully emptied")


@router.delete("/bucket/{bucket_id}")
def delete_bucket(session: StorageSession, actor: Acting, bucket_id: str) -> Message:
    """Only an empty bucket (409 otherwise)."""
    buckets.delete_bucket(session, actor, bucket_id)
    return Message(message="Successfully deleted")


# -- objects: JSON operations ---------------------------------------------------------------


@router.post("/object/list/{bucket_id}")
def list_objects(
    session: StorageSession, actor: Acting, bucket_id: str, body: ListRequest
) -> list[ListEntry]:
    """One folder level: files, then sub-folders as entries whose id is null."""
    return objects.list_objects(session, bucket_id, body)


@router.post("/object/sign/{bucket_id}")
def sign_many(
    session: StorageSession, settings: SettingsDep, actor: Acting, bucket_id: str,
    body: SignManyRequest,
) -> list[SignedURLItem]:  # fmt: skip
    return signed.sign_urls(session, settings, actor, bucket_id, body.paths, body.expiresIn)


@router.post("/object/sign/{bucket_id}/{path:path}")
def sign_one(
    session: StorageSession, settings: SettingsDep, actor: Acting, bucket_id: str,
    path: ObjectPath, body: SignRequest,
) -> SignedURL:  # fmt: skip
    """A download URL valid `expiresIn` seconds, for an object you may read."""
    item = signed.sign_urls(session, settings, actor, bucket_id, [path], body.expiresIn)
    if item[0].signedURL is None:
        raise object_not_found()
    return SignedURL(signedURL=item[0].signedURL)


@router.post("/object/upload/sign/{bucket_id}/{path:path}")
def sign_upload(
    session: StorageSession, settings: SettingsDep, actor: Acting, bucket_id: str,
    path: ObjectPath, x_upsert: Annotated[str | None, Header()] = None,
) -> SignedUploadURL:  # fmt: skip
    """An upload URL (two hours) through which anyone may upload this object in your name."""
    upsert = (x_upsert or "").lower() == "true"
    return signed.signed_upload_url(session, settings, actor, bucket_id, path, upsert)


@router.post("/object/move")
def move_object(session: StorageSession, actor: Acting, body: MoveRequest) -> Message:
    objects.move_object(session, actor, body)
    return Message(message="Successfully moved")


@router.post("/object/copy")
def copy_object(
    session: WritingSession, settings: SettingsDep, store: Store, actor: Acting,
    body: MoveRequest,
) -> UploadResult:  # fmt: skip
    return uploads.copy_object(session, settings, store, actor, body)


@router.get("/object/info/{bucket_id}/{path:path}")
def object_info(
    session: StorageSession, actor: Acting, bucket_id: str, path: ObjectPath
) -> ObjectInfo:
    return objects.object_info(session, bucket_id, path)


@router.delete("/object/{bucket_id}")
def remove_objects(
    session: WritingSession, actor: Acting, bucket_id: str, body: RemoveRequest
) -> list[ObjectRow]:
    """Deletes those of `prefixes` you may delete; returns them."""
    return objects.remove_objects(session, bucket_id, body.prefixes)


@router.delete("/object/{bucket_id}/{path:path}")
def remove_object(
    session: WritingSession, actor: Acting, bucket_id: str, path: ObjectPath
) -> Message:
    objects.remove_object(session, bucket_id, path)
    return Message(message="Successfully deleted")


# -- objects: bytes in and out (not in the OpenAPI schema) -------------------------------
# The file to stream is opened in the transaction; it stays readable after the commit,
# whatever happens to the object meanwhile, and the response closes it.

Download = Annotated[str | None, Query(description="serve as an attachment named so")]


@router.get("/object/public/{bucket_id}/{path:path}", include_in_schema=False)
async def download_public(
    request: Request, session: StorageSession, store: Store, bucket_id: str, path: str,
    download: Download = None,
) -> Response:  # fmt: skip
    """Objects of public buckets, to anyone."""
    opened = await run_in_threadpool(objects.open_public, session, store, bucket_id, path)
    return file_response(opened, request, download)


@router.get("/object/sign/{bucket_id}/{path:path}", include_in_schema=False)
async def download_signed(
    request: Request, session: StorageSession, settings: SettingsDep, store: Store,
    bucket_id: str, path: str, token: Annotated[str | None, Query()] = None,
    download: Download = None,
) -> Response:  # fmt: skip
    opened = await run_in_threadpool(
        signed.open_signed, session, settings, store, token, bucket_id, path
    )
    return file_response(opened, request, download)


# The generic path last: decorators register bottom-up, and routes match in order.
@router.get("/object/{bucket_id}/{path:path}", include_in_schema=False)
@router.get("/object/authenticated/{bucket_id}/{path:path}", include_in_schema=False)
async def download(
    request: Request, session: StorageSession, store: Store, actor: Acting,
    bucket_id: str, path: str, download: Download = None,
) -> Response:  # fmt: skip
    opened = await run_in_threadpool(objects.open_object, session, store, bucket_id, path)
    return file_response(opened, request, download)


async def _upload(
    request: Request, session: Session, settings: Settings, store: BlobStore,
    target: uploads.Target, *, upsert: bool, must_exist: bool = False,
) -> UploadResult:  # fmt: skip
    """Receive the body into a temporary file, then record it as the target's new object."""
    received = await receive(request, store, target, settings.storage_allowed_mime_types)
    try:
        return await run_in_threadpool(
            lambda: uploads.store_object(
                session, store, target, received.upload, received.mimetype,
                cache_seconds=received.cache_seconds, user_metadata=received.user_metadata,
                upsert=upsert, must_exist=must_exist,
            )
        )  # fmt: skip
    finally:
        received.upload.discard()  # gone already once placed


@router.put("/object/upload/sign/{bucket_id}/{path:path}", include_in_schema=False)
async def upload_signed(
    request: Request, session: WritingSession, settings: SettingsDep, store: Store,
    bucket_id: str, path: str, token: Annotated[str | None, Query()] = None,
) -> UploadResult:  # fmt: skip
    target, upsert = await run_in_threadpool(
        signed.signed_upload_target, session, settings, token, bucket_id, path
    )
    return await _upload(request, session, settings, store, target, upsert=upsert)


@router.post("/object/{bucket_id}/{path:path}", include_in_schema=False)
async def upload_object(
    request: Request, session: WritingSession, settings: SettingsDep, store: Store,
    actor: Acting, bucket_id: str, path: str,
    x_upsert: Annotated[str | None, Header()] = None,
) -> UploadResult:  # fmt: skip
    """A new object; with `x-upsert: true`, or a new version of your own."""
    target = await run_in_threadpool(
        uploads.upload_target, session, settings, actor, bucket_id, path
    )
    upsert = (x_upsert or "").lower() == "true"
    return await _upload(request, session, settings, store, target, upsert=upsert)


@router.put("/object/{bucket_id}/{path:path}", include_in_schema=False)
async def update_object(
    request: Request, session: WritingSession, settings: SettingsDep, store: Store,
    actor: Acting, bucket_id: str, path: str,
) -> UploadResult:  # fmt: skip
    """A new version of an existing object of yours."""
    target = await run_in_threadpool(
        uploads.upload_target, session, settings, actor, bucket_id, path
    )
    return await _upload(request, session, settings, store, target, upsert=True, must_exist=True)
