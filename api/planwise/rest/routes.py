"""`/rest/v1`: PostgREST's HTTP interface over the exposed schema, for postgrest-js/-py.

Each request is one transaction that runs as the JWT's role (`anon`, `authenticated` or
`service_role`) with `request.jwt.claims` set, so grants and row-level security decide,
as behind PostgREST. Responses carry PostgREST's statuses and headers (`Content-Range`,
`Preference-Applied`, `Location`), errors its body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session
from starlette.datastructures import Headers

from planwise.config import Settings
from planwise.db.session import unit_of_work
from planwise.rest import service
from planwise.rest.catalog import SCHEMA, SchemaCache
from planwise.rest.errors import JSON_HEADERS, RestError, from_database
from planwise.rest.identity import resolve_identity
from planwise.rest.query import parse_query, parse_range_header
from planwise.rest.schemas import Identity, Outcome, ParsedQuery, Preferences

PREFIX = "/rest/v1"
OBJECT_MEDIA = "application/vnd.pgrst.object+json"
ARRAY_MEDIA = "application/vnd.pgrst.array+json"
JSON_MEDIA = "application/json"

router = APIRouter(prefix=PREFIX, tags=["supabase"])


@dataclass(frozen=True)
class Media:
    singular: bool
    strip_nulls: bool

    @property
    def content_type(self) -> str:
        return f"{OBJECT_MEDIA if self.singular else JSON_MEDIA}; charset=utf-8"


def negotiate(accept: str | None) -> Media:
    """PostgREST's media types: JSON arrays, single objects, with `nulls=stripped`."""
    if not accept:
        return Media(False, False)
    offered = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        strip = "nulls=stripped" in params
        if media in (OBJECT_MEDIA, "application/vnd.pgrst.object"):
            return Media(True, strip)
        if media in (JSON_MEDIA, ARRAY_MEDIA, "application/*", "*/*"):
            return Media(False, strip)
        offered.append(media)
    raise RestError(406, "PGRST107",
                    "None of these media types are available: " + ", ".join(offered))  # fmt: skip


def content_range(lower: int, upper: int, total: int | None) -> str:
    """PostgREST's contentRangeH: `0-9/42`, `*/*` for an empty range."""
    span = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    return f"{span}/{'*' if total is None else total}"


def error_response(error: RestError) -> Response:
    return Response(
        json.dumps(error.body),
        status_code=error.status,
        headers={**JSON_HEADERS, **error.headers},
    )


def apply_range(query: ParsedQuery, header: str | None) -> int:
    """Intersect `Range: a-b` with `offset`/`limit`, as PostgREST does; the lower bound."""
    lower, upper = parse_range_header(header)
    offset = query.offset.get((), 0)
    limit = query.limit.get(())
    lower = max(lower, offset)
    if limit is not None:
        last = offset + limit - 1
        upper = last if upper is None else min(upper, last)
    if lower:
        query.offset[()] = lower
    if upper is not None:
        query.limit[()] = max(0, upper - lower + 1)
    return lower


def read_json(body: bytes, content_type: str | None, *, empty: Any) -> Any:
    media = (content_type or JSON_MEDIA).split(";")[0].strip().lower()
    if media not in (JSON_MEDIA, ARRAY_MEDIA, OBJECT_MEDIA):
        raise RestError(415, "PGRST107", f"Content-Type not acceptable: {media}")
    if not body.strip():
        if empty is not None:
            return empty
        raise RestError.invalid_body("Empty or invalid json")
    try:
        return json.loads(body)
    except ValueError:
        raise RestError.invalid_body("Empty or invalid json") from None


@dataclass(frozen=True)
class Call:
    """One HTTP request, as the handlers need it."""

    method: str
    path: str
    pairs: list[tuple[str, str]]
    headers: Headers
    body: bytes


def _handle(engine: Engine, settings: Settings, call: Call, target: str, rpc: bool) -> Response:
    identity: Identity | None = None
    try:
        identity = resolve_identity(settings, call.headers)
        check_profile(call.headers)
        if call.method == "PUT":
            raise RestError.not_implemented(
                "PUT is not supported: upsert with POST and Prefer: resolution=merge-duplicates"
            )
        media = negotiate(call.headers.get("accept"))
        prefs = Preferences.parse(call.headers.getlist("prefer"))
        if prefs.unsupported:
            raise RestError.not_implemented("Prefer: " + ", ".join(prefs.unsupported))
        reading = call.method in ("GET", "HEAD")
        query = parse_query(call.pairs, rpc_read=rpc and reading)
        lower = apply_range(query, call.headers.get("range") if reading or rpc else None)
        with unit_of_work(engine) as session:
            cache = service.begin_request(
                session, str(engine.url), identity, call.method, call.path, dict(call.headers)
            )
            response = _execute(session, cache, call, target, rpc, query, prefs, media, lower)
        return response
    except RestError as error:
        return error_response(error)
    except psycopg.Error as error:
        return error_response(_database_error(error, identity))
    except PoolTimeout:
        return error_response(
            RestError(504, "PGRST003", "Timed out acquiring connection from connection pool.")
        )
    except DBAPIError as error:
        if isinstance(error.orig, psycopg.Error):
            return error_response(_database_error(error.orig, identity))
        raise


def check_profile(headers: Headers) -> None:
    """`Accept-Profile`/`Content-Profile` (postgrest's `.schema()`): only `public` is exposed."""
    for name in ("accept-profile", "content-profile"):
        schema = headers.get(name)
        if schema is not None and schema != SCHEMA:
            raise RestError(
                406, "PGRST106", f"Invalid schema: {schema}",
                hint=f"Only the following schemas are exposed: {SCHEMA}",
            )  # fmt: skip


def _database_error(error: psycopg.Error, identity: Identity | None) -> RestError:
    if error.diag.sqlstate is None:
        if isinstance(error, psycopg.DataError):
            # Refused by the driver before it reached the server (a NUL in a value).
            return RestError(400, "22021", str(error))
        return RestError(503, "PGRST000", "Database connection error.")
    return from_database(error, identity is not None and identity.role != "anon")


def _execute(
    session: Session,
    cache: SchemaCache,
    call: Call,
    target: str,
    rpc: bool,
    query: ParsedQuery,
    prefs: Preferences,
    media: Media,
    lower: int,
) -> Response:
    options = {"singular": media.singular, "strip_nulls": media.strip_nulls}
    if rpc:
        if call.method in ("GET", "HEAD"):
            arguments: dict[str, Any] = dict(query.arguments)
        else:
            arguments = read_json(call.body, call.headers.get("content-type"), empty={})
            if not isinstance(arguments, dict):
                raise RestError.invalid_body(
                    "The arguments of a function call must be a JSON object"
                )
        function, outcome = service.call(
            session, cache, target, query, prefs, arguments,
            read_only=call.method in ("GET", "HEAD"), **options,
        )  # fmt: skip
        check_singular(outcome, media)
        if function.kind == "void":
            return Response(status_code=204, headers=_applied(prefs))
        return read_response(call, outcome, prefs, media, lower)
    if call.method in ("GET", "HEAD"):
        outcome = service.read(session, cache, target, query, prefs, **options)
        check_singular(outcome, media)
        return read_response(call, outcome, prefs, media, lower)
    if call.method == "POST":
        payload = read_json(call.body, call.headers.get("content-type"), empty=None)
        outcome = service.insert(session, cache, target, query, prefs, payload, **options)
        check_singular(outcome, media)
        status = 200 if prefs.resolution == "merge-duplicates" and not outcome.inserted else 201
        headers = {"Content-Range": content_range(1, 0, outcome.rows if prefs.count else None)}
        if outcome.location:
            headers["Location"] = outcome.location
        return write_response(status, status, outcome, prefs, media, headers)
    if call.method == "PATCH":
        payload = read_json(call.body, call.headers.get("content-type"), empty=None)
        outcome = service.update(session, cache, target, query, prefs, payload, **options)
        check_singular(outcome, media)
        total = outcome.rows if prefs.count else None
        headers = {"Content-Range": content_range(0, outcome.rows - 1, total)}
        return write_response(200, 204, outcome, prefs, media, headers)
    outcome = service.delete(session, cache, target, query, prefs, **options)
    check_singular(outcome, media)
    headers = {"Content-Range": content_range(1, 0, outcome.rows if prefs.count else None)}
    return write_response(200, 204, outcome, prefs, media, headers)


def check_singular(outcome: Outcome, media: Media) -> None:
    """Raised inside the transaction, so a PATCH or DELETE of 0 or 2+ rows is rolled back."""
    if media.singular and outcome.rows != 1:
        raise RestError.singular(outcome.rows)


def _applied(prefs: Preferences) -> dict[str, str]:
    applied = prefs.applied()
    return {"Preference-Applied": applied} if applied else {}


def read_response(
    call: Call, outcome: Outcome, prefs: Preferences, media: Media, lower: int
) -> Response:
    total = outcome.total
    upper = lower + outcome.rows - 1
    if total is not None and lower > total:
        error = RestError(
            416, "PGRST103", "Requested range not satisfiable",
            f"An offset of {lower} was requested, but there are only {total} rows.",
        )  # fmt: skip
        response = error_response(error)
        response.headers["Content-Range"] = content_range(lower, upper, total)
        return response
    status = 206 if total is not None and outcome.rows < total else 200
    headers = {"Content-Range": content_range(lower, upper, total), **_applied(prefs)}
    headers["Content-Type"] = media.content_type
    body = b"" if call.method == "HEAD" else (outcome.body or "null").encode()
    return Response(body, status_code=status, headers=headers)


def write_response(
    status: int,
    minimal_status: int,
    outcome: Outcome,
    prefs: Preferences,
    media: Media,
    headers: dict[str, str],
) -> Response:
    """With `return=representation` the rows and `status`; else no body, `minimal_status`."""
    headers.update(_applied(prefs))
    if prefs.representation == "full":
        headers["Content-Type"] = media.content_type
        return Response((outcome.body or "[]").encode(), status_code=status, headers=headers)
    return Response(status_code=minimal_status, headers=headers)


async def _dispatch(request: Request, target: str, rpc: bool) -> Response:
    body = await request.body()
    path = f"/rpc/{target}" if rpc else f"/{target}"
    call = Call(
        request.method,
        path,
        parse_qsl(request.url.query, keep_blank_values=True),
        request.headers,
        body,
    )
    engine: Engine = request.app.state.engine
    settings: Settings = request.app.state.settings
    return await run_in_threadpool(_handle, engine, settings, call, target, rpc)


async def call_function(function: str, request: Request) -> Response:
    """Call a function of the exposed schema with named arguments (POST body or query)."""
    return await _dispatch(request, function, True)


async def table_endpoint(table: str, request: Request) -> Response:
    """Read, insert, upsert, update or delete rows of a table (PostgREST's grammar)."""
    return await _dispatch(request, table, False)


# One route per method, so each has its own OpenAPI operation id.
for _method in ("GET", "HEAD", "POST"):
    router.add_api_route(
        "/rpc/{function}", call_function, methods=[_method],
        operation_id=f"rest_rpc_{_method.lower()}",
    )  # fmt: skip
for _method in ("GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"):
    router.add_api_route(
        "/{table}", table_endpoint, methods=[_method],
        operation_id=f"rest_table_{_method.lower()}",
    )  # fmt: skip
