"""The FastAPI application: routers per domain, database errors as clear HTTP answers."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from planwise.auth.routes import router as gotrue_router
from planwise.config import Settings, get_settings
from planwise.console.routes import install as install_console
from planwise.db.engine import build_engine, build_read_routing
from planwise.db.migrations import head_revision
from planwise.db.waits import bound_thread_waits
from planwise.deps import API_PREFIX
from planwise.functions import router as functions_router
from planwise.http_exposure import DOCS_PATHS, ExposureGuard, SecurityHeaders
from planwise.http_limits import ClientSlots, Limits, RequestLimits
from planwise.observability import Metrics, MetricsMiddleware
from planwise.ops.monitor.report import DatabaseCollector
from planwise.ops.monitor.routes import router as admin_router
from planwise.ops.monitor.sampler import ScheduledSampler
from planwise.places.routes import router as places_router
from planwise.preferences.routes import router as preferences_router
from planwise.realtime import Realtime
from planwise.realtime import router as realtime_router
from planwise.recommendations.routes import router as recommendations_router
from planwise.rest import router as rest_router
from planwise.reviews.routes import router as reviews_router
from planwise.storage.errors import StorageError
from planwise.storage.routes import router as storage_router
from planwise.storage.routes import storage_error_response
from planwise.users.routes import auth_router, users_router
from planwise.validation import public_errors

logger = logging.getLogger("planwise.api")

POOL_RETRY_AFTER_SECONDS = 1
DATABASE_RETRY_AFTER_SECONDS = 5


def _unavailable(detail: str, retry_after: int) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(retry_after)},
    )


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as the strings JSON cannot hold them as numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Database trouble becomes a JSON 4xx/503, never a bare 500 with a traceback."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422, except that an input holding NaN or an infinity (which
        Python's JSON parser accepts) is echoed as a string instead of failing to render,
        and that inputs are echoed bounded and never from a field named like a secret."""
        errors = json_safe(jsonable_encoder(public_errors(error.errors())))
        return JSONResponse({"detail": errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(_request: Request, _error: PoolTimeout) -> JSONResponse:
        metrics.pool_timeouts.inc()
        return _unavailable(
            "all database connections are busy; retry shortly", POOL_RETRY_AFTER_SECONDS
        )

    @app.exception_handler(DBAPIError)
    async def database_error(_request: Request, error: DBAPIError) -> JSONResponse:
        original = error.orig
        if isinstance(original, pg_errors.InsufficientPrivilege):
            return JSONResponse({"detail": "not allowed"}, status.HTTP_403_FORBIDDEN)
        if isinstance(original, pg_errors.QueryCanceled):
            return _unavailable("the query took too long and was cancelled", 1)
        if isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated:
            logger.warning("database unavailable: %s", original)
            return _unavailable("database unavailable; retry shortly", DATABASE_RETRY_AFTER_SECONDS)
        if isinstance(error, IntegrityError):
            return JSONResponse(
                {"detail": "conflicts with existing data"}, status.HTTP_409_CONFLICT
            )
        if isinstance(original, pg_errors.DataError):
            # Shaped like FastAPI's own validation errors, as the OpenAPI schema promises.
            problem = {"type": "value_error", "loc": ["body"], "input": None,
                       "msg": f"invalid value: {str(original).splitlines()[0]}"}  # fmt: skip
            return JSONResponse({"detail": [problem]}, status.HTTP_422_UNPROCESSABLE_CONTENT)
        logger.exception("unexpected database error", exc_info=error)
        return JSONResponse({"detail": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_servable()
    engine = build_engine(settings.app_url, settings, application_name="planwise-api")
    read_routing = build_read_routing(engine, settings)
    metrics = Metrics(engine)
    metrics.registry.register(DatabaseCollector(engine, settings))
    expected_revision = head_revision()
    realtime = Realtime(settings, engine)
    sampler = ScheduledSampler(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        bound_thread_waits(settings.api_worker_threads, settings.database_pool_timeout)
        await realtime.start()
        sampler.start()
        yield
        sampler.stop()
        await realtime.stop()
        read_routing.dispose()
        engine.dispose()

    docs = settings.docs_access != "off"
    app = FastAPI(
        title="Planwise API",
        version="1.0.0",
        summary="Places near a traveller, ranked by their own category preferences.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.read_routing = read_routing
    app.state.metrics = metrics
    app.state.realtime = realtime
    app.state.realtime_clients = ClientSlots(settings.realtime_max_connections_per_client)
    install_middleware(app, settings, metrics)
    install_error_handlers(app, metrics)

    for router in (
        auth_router,
        users_router,
        places_router,
        reviews_router,
        preferences_router,
        recommendations_router,
        admin_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(realtime_router)  # /realtime/v1/websocket, where Supabase has it
    app.include_router(storage_router)  # /storage/v1, likewise
    app.add_exception_handler(StorageError, storage_error_response)  # in Storage's shape
    app.include_router(gotrue_router)  # /auth/v1, likewise
    app.include_router(rest_router)  # /rest/v1, PostgREST's interface
    app.include_router(functions_router)  # /functions/v1, Supabase's Edge Functions
    install_console(app)  # /admin/: the operations console (HTML)

    @app.get(
        "/health",
        tags=["operations"],
        responses={503: {"description": "database unreachable or schema not at head"}},
    )
    def health() -> JSONResponse:
        """Ready when the database answers and its schema is at the code's migration head."""
        try:
            with engine.connect() as connection:
                current = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except (DBAPIError, PoolTimeout) as error:
            return JSONResponse(
                {"status": "unavailable", "database": str(error.__class__.__name__)},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
            )
        body = {"database": "ok", "migration": current, "expected_migration": expected_revision}
        if current != expected_revision:
            return JSONResponse({"status": "migration pending", **body}, status_code=503)
        return JSONResponse({"status": "ok", **body})

    app.add_api_route(f"{API_PREFIX}/health", health, methods=["GET"], include_in_schema=False)

    if settings.metrics_access != "off":

        @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
        def prometheus_metrics() -> PlainTextResponse:
            """Prometheus text exposition of this process's metrics."""
            exposition = generate_latest(metrics.registry)
            return PlainTextResponse(exposition, media_type=CONTENT_TYPE_LATEST)

    return app


def install_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """Outermost first: security headers on every answer, the docs and metrics guard,
    metrics, then the request limits (so refusals are counted and carry the headers)."""
    app.add_middleware(RequestLimits, limits=Limits.of(settings))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    guarded = set()
    if settings.docs_access == "credential":
        guarded |= {*DOCS_PATHS, "/docs/oauth2-redirect", "/openapi.json"}
    if settings.metrics_access == "credential":
        guarded.add("/metrics")
    if guarded and settings.ops_credential is not None:
        credential = settings.ops_credential.get_secret_value()
        app.add_middleware(ExposureGuard, guarded=frozenset(guarded), credential=credential)
    app.add_middleware(SecurityHeaders)
