"""Refusals in Supabase Storage's error shape, and what refusals of others mean in it.

Services raise `StorageError`; the routes answer it (`routes.storage_error_response`). A
refused token (users) or a refused statement (the database) is translated here, so each
message and status is written once.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError

from planwise.users.security import ExpiredToken, InvalidToken
from planwise.users.service import (
    BadToken,
    DeactivatedUser,
    MissingToken,
    TokenRefused,
)

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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


def object_not_found() -> StorageError:
    return StorageError(404, "not_found", "Object not found", "NoSuchKey")


def bucket_not_found() -> StorageError:
    return StorageError(404, "Bucket not found", "Bucket not found", "NoSuchBucket")


def duplicate() -> StorageError:
    return StorageError(409, "Duplicate", "The resource already exists", "Duplicate")


def bucket_not_empty() -> StorageError:
    return StorageError(
        409, "InvalidRequest", "The bucket you tried to delete is not empty", "BucketNotEmpty"
    )


def forbidden(message: str) -> StorageError:
    return StorageError(403, "Unauthorized", message, "AccessDenied")


def not_owner() -> StorageError:
    return forbidden("the object belongs to another user")


def invalid(message: str) -> StorageError:
    return StorageError(400, "Invalid Input", message, "InvalidRequest")


def invalid_key(message: str) -> StorageError:
    return StorageError(400, "InvalidKey", f"Invalid key: {message}", "InvalidKey")


def invalid_jwt(message: str, status: int = 400) -> StorageError:
    return StorageError(status, "InvalidJWT", message, "InvalidJWT")


def url_mismatch() -> StorageError:
    return StorageError(
        400, "InvalidSignature", "The url does not match the signature", "InvalidSignature"
    )


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


def token_refusal(refused: TokenRefused) -> StorageError:
    """A bearer token `users.service.resolve_bearer` refused, as Storage answers it."""
    if isinstance(refused, MissingToken):
        return StorageError(
            401, "Unauthorized", "no bearer token: send Authorization: Bearer <jwt>",
            "InvalidJWT", BEARER_CHALLENGE,
        )  # fmt: skip
    if isinstance(refused, BadToken):
        return StorageError(
            401, "InvalidJWT", f"invalid token: {refused}", "InvalidJWT", BEARER_CHALLENGE
        )
    if isinstance(refused, DeactivatedUser):
        return forbidden(str(refused))
    return invalid_jwt(str(refused), status=401)  # UnknownUser, and any refusal to come


def url_token_refusal(refused: InvalidToken) -> StorageError:
    """A signed URL's token `users.security.verify_object_url` refused."""
    if isinstance(refused, ExpiredToken):
        return invalid_jwt(str(refused))
    return invalid_jwt(f"invalid token: {refused}")


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
