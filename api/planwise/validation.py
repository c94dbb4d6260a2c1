"""Input types shared by the domains' request models."""

from typing import Annotated

from pydantic import AfterValidator, Field


def _no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL: answer 422 rather than fail in the database."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


DbStr = Annotated[str, AfterValidator(_no_nul)]
"""A string PostgreSQL can store; add length limits with Field(...) where it is used."""

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
