"""PostgREST's error body (`code`, `message`, `details`, `hint`) and HTTP statuses.

Codes and statuses follow PostgREST's `src/PostgREST/Error.hs`: PGRST1xx for requests it
cannot parse or serve, PGRST2xx for names missing from the schema cache, PGRST3xx for
JWTs, and PostgreSQL's own SQLSTATE (with its message, detail and hint) for whatever the
database refused, mapped to a status as PostgREST's `mapSQLtoHTTP` does.
"""

from __future__ import annotations

from typing import Any

import psycopg

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class RestError(Exception):
    """An answer in PostgREST's error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or {}

    @property
    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "hint": self.hint,
                "message": self.message}  # fmt: skip

    @classmethod
    def bad_request(cls, code: str, message: str, details: str | None = None) -> RestError:
        return cls(400, code, message, details)

    @classmethod
    def not_implemented(cls, details: str) -> RestError:
        return cls(400, "PGRST127", "Feature not implemented", details)

    @classmethod
    def invalid_body(cls, message: str) -> RestError:
        return cls(400, "PGRST102", message)

    @classmethod
    def undefined_column(cls, table: str, column: str) -> RestError:
        # What PostgreSQL says (and PostgREST passes on) for a select, filter or order
        # naming a column the table does not have.
        return cls(400, "42703", f"column {table}.{column} does not exist")

    @classmethod
    def payload_column(cls, table: str, column: str) -> RestError:
        return cls(
            400,
            "PGRST204",
            f"Could not find the '{column}' column of '{table}' in the schema cache",
        )

    @classmethod
    def singular(cls, rows: int) -> RestError:
        return cls(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                   f"The result contains {rows} rows")  # fmt: skip


def status_for_sqlstate(sqlstate: str, message: str, authenticated: bool) -> int:
    """PostgREST's mapSQLtoHTTP."""
    exact = {
        "23503": 409, "23505": 409, "25006": 405, "42P01": 404, "42P17": 500,
        "53400": 500, "57P01": 503, "P0001": 400,
    }  # fmt: skip
    if sqlstate in exact:
        return exact[sqlstate]
    if sqlstate == "42501":
        return 403 if authenticated else 401
    if sqlstate == "42883":
        return 404
    if sqlstate == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    prefixes = {
        "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500,
        "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500,
        "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500,
    }  # fmt: skip
    if sqlstate[:2] == "PT" and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    return prefixes.get(sqlstate[:2], 400)


def from_database(error: psycopg.Error, authenticated: bool) -> RestError:
    """A database error as PostgREST reports it: SQLSTATE, message, detail and hint."""
    diag = error.diag
    sqlstate = diag.sqlstate or "XX000"
    message = diag.message_primary or str(error)
    headers = {} if authenticated or sqlstate != "42501" else {"WWW-Authenticate": "Bearer"}
    return RestError(
        status_for_sqlstate(sqlstate, message, authenticated), sqlstate, message,
        diag.message_detail, diag.message_hint, headers,
    )  # fmt: skip
