"""Answers in the shapes Supabase's functions gateway gives (the edge runtime's main
service, as `supabase functions serve` runs it): a plain-text 404, `{"msg"}` for a JWT
refused, `{"code", "message"}` for a function that failed to boot (503), crashed (500) or
hit its time or memory limit (546, Supabase's own status)."""

from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse, Response

WORKER_LIMIT_STATUS = 546


def not_found() -> Response:
    return PlainTextResponse("Function not found", status_code=404)


def unauthorized(message: str) -> Response:
    return JSONResponse({"msg": message}, status_code=401)


def boot_error() -> Response:
    return JSONResponse(
        {"code": "BOOT_ERROR", "message": "Worker failed to boot (please check logs)"},
        status_code=503,
    )


def worker_error() -> Response:
    return JSONResponse(
        {"code": "WORKER_ERROR", "message": "Function exited due to an error (please check logs)"},
        status_code=500,
    )


def worker_limit() -> Response:
    return JSONResponse(
        {
            "code": "WORKER_LIMIT",
            "message": "Worker failed to respond due to a resource limit (please check logs)",
        },
        status_code=WORKER_LIMIT_STATUS,
    )
