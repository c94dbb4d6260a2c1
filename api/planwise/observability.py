"""Prometheus metrics of the API process: requests and the SQLAlchemy pool.

Each app gets its own registry (tests build several apps in one process). With several
uvicorn workers each worker reports its own figures; scrape them per worker or run one
worker per container, as Prometheus's client recommends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class PoolCollector(Collector):
    """Reads the pool's state at scrape time, so the figures are never stale."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return
        figures = {
            "size": ("configured pool size (DATABASE_POOL_SIZE)", pool.size()),
            "checked_out": ("connections in use by requests", pool.checkedout()),
            "idle": ("connections idle in the pool", pool.checkedin()),
            "overflow": ("connections beyond the pool size (DATABASE_MAX_OVERFLOW)",
                         max(pool.overflow(), 0)),
        }  # fmt: skip
        for name, (documentation, value) in figures.items():
            yield GaugeMetricFamily(f"planwise_db_pool_{name}", documentation, value=value)


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "planwise_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "planwise_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.pool_timeouts = Counter(
            "planwise_db_pool_timeouts",
            "requests refused because no connection freed up within DATABASE_POOL_TIMEOUT",
            registry=self.registry,
        )
        self.registry.register(PoolCollector(engine))


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): sees the scope the router fills in, costs little."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def remember_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, route, str(status_code)).inc()


def _route_template(scope: Scope) -> str:
    """`/api/v1/reviews/{review_id}`, not the raw path: bounded label cardinality.

    The router records the matched route in the scope; unmatched paths (404s) share a label.
    """
    route = scope.get("route")
    return str(getattr(route, "path_format", None) or getattr(route, "path", "unmatched"))
