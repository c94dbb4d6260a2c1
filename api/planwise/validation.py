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


def _known_category(value: str) -> str:
    from planwise.places.categories import CATEGORIES

    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}; known: {', '.join(CATEGORIES)}")
    return value


KnownCategory = Annotated[str, AfterValidator(_known_category)]
"""A category of the Google-types mapping (`planwise.places.categories.CATEGORIES`)."""


def parse_lat_lng(value: str) -> tuple[float, float]:
    """`"lat,lng"` → (lat, lng), in range; ValueError otherwise."""
    from planwise.places.geo import validate_point

    parts = value.split(",")
    if len(parts) != 2:
        raise ValueError("must be 'lat,lng', e.g. '48.8566,2.3522'")
    lat, lng = float(parts[0]), float(parts[1])
    validate_point(lat, lng)
    return lat, lng


def _lat_lng(value: str) -> str:
    parse_lat_lng(value)
    return value


LatLngText = Annotated[str, AfterValidator(_lat_lng)]
"""`"lat,lng"` with lat in -90..90 and lng in -180..180 (a 422 otherwise)."""
