"""Signed URLs: a token in the URL stands in for the signer's bearer token.

The token (`users.security.sign_object_url`) names the object and the signer; a download
or upload through it acts as the signer, so RLS still decides when the URL is used.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from planwise.config import Settings
from planwise.storage import queries
from planwise.storage.actors import Actor, act_as_signer
from planwise.storage.blobs import BlobStore
from planwise.storage.errors import invalid_jwt, token_refusal, url_mismatch, url_token_refusal
from planwise.storage.names import check_bucket_id, check_name, quoted_key, url_of
from planwise.storage.objects import Opened, open_row
from planwise.storage.schemas import SignedUploadURL, SignedURLItem
from planwise.storage.uploads import Target, upload_target
from planwise.users.security import (
    OBJECT_DOWNLOAD_AUDIENCE,
    OBJECT_UPLOAD_AUDIENCE,
    InvalidToken,
    issued_at,
    sign_object_url,
    verify_object_url,
)
from planwise.users.service import TokenRefused

SIGNED_UPLOAD_SECONDS = 2 * 3600
NOT_READABLE = "Either the object does not exist or you do not have access to it"


def sign_urls(
    session: Session,
    settings: Settings,
    actor: Actor,
    bucket_id: str,
    names: list[str],
    expires_in: int,
) -> list[SignedURLItem]:
    """Download URLs for those of `names` the user may read now (an error for the others)."""
    check_bucket_id(bucket_id)
    items = []
    for name in names:
        if queries.find_object(session, bucket_id, check_name(name)) is None:
            items.append(SignedURLItem(error=NOT_READABLE, path=name, signedURL=None))
            continue
        claims = {"url": url_of(bucket_id, name), "signer": actor.user_id, "role": actor.role}
        signed = sign_object_url(settings, OBJECT_DOWNLOAD_AUDIENCE, claims, expires_in)
        url = f"/object/sign/{quoted_key(bucket_id, name)}?token={signed}"
        items.append(SignedURLItem(error=None, path=name, signedURL=url))
    return items


def signed_upload_url(
    session: Session, settings: Settings, actor: Actor, bucket_id: str, name: str, upsert: bool
) -> SignedUploadURL:
    """A URL anyone holding it may upload one object through, in the signer's name."""
    upload_target(session, settings, actor, bucket_id, name)
    claims = {"url": url_of(bucket_id, name), "owner": actor.user_id, "role": actor.role}
    claims["upsert"] = upsert
    signed = sign_object_url(settings, OBJECT_UPLOAD_AUDIENCE, claims, SIGNED_UPLOAD_SECONDS)
    return SignedUploadURL(
        url=f"/object/upload/sign/{quoted_key(bucket_id, name)}?token={signed}", token=signed
    )


def _signer(
    session: Session, settings: Settings, audience: str, token: str | None, url: str, claim: str
) -> tuple[Actor, dict[str, Any]]:
    """Verify a URL's token for `url`, and act as whoever its `claim` (and `role`) name."""
    if not token:
        raise invalid_jwt("this URL needs its token (?token=…)")
    try:
        claims = verify_object_url(settings, audience, token)
    except InvalidToken as refused:
        raise url_token_refusal(refused) from None
    if claims["url"] != url:
        raise url_mismatch()
    try:
        signer = act_as_signer(session, claims.get(claim), claims.get("role"), issued_at(claims))
        return signer, claims
    except ValueError:
        raise invalid_jwt(f"invalid token: no {claim}") from None
    except TokenRefused as refused:
        raise token_refusal(refused) from None


def open_signed(
    session: Session,
    settings: Settings,
    store: BlobStore,
    token: str | None,
    bucket_id: str,
    name: str,
) -> Opened:
    """A download through a signed URL, read as its signer (with nobody acting before)."""
    url = url_of(check_bucket_id(bucket_id), check_name(name))
    _signer(session, settings, OBJECT_DOWNLOAD_AUDIENCE, token, url, "signer")
    return open_row(store, queries.find_object(session, bucket_id, name))


def signed_upload_target(
    session: Session, settings: Settings, token: str | None, bucket_id: str, name: str
) -> tuple[Target, bool]:
    """Where an upload through a signed URL goes, as its signer, and whether it may upsert."""
    url = url_of(check_bucket_id(bucket_id), check_name(name))
    signer, claims = _signer(session, settings, OBJECT_UPLOAD_AUDIENCE, token, url, "owner")
    return upload_target(session, settings, signer, bucket_id, name), bool(claims.get("upsert"))
