"""Request and response bodies of the places API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from planwise.places.models import Place
from planwise.validation import DbStr, Latitude, Longitude


class PlaceIn(BaseModel):
    """An admin's upsert; `category` is derived from `types` when not given."""

    name: DbStr = Field(min_length=1, max_length=200)
    lat: Latitude
    lng: Longitude
    types: list[DbStr] = Field(default_factory=list, max_length=50)
    category: DbStr | None = Field(None, min_length=1, max_length=100)
    rating: float | None = Field(None, ge=0, le=5)
    user_ratings_total: int | None = Field(None, ge=0, le=2_000_000_000)
    description: DbStr | None = Field(None, max_length=10_000)
    opening_hours: dict[str, Any] | None = None

    @field_validator("types")
    @classmethod
    def _types_fit_the_column(cls, value: list[str]) -> list[str]:
        if any("," in item or not item for item in value):
            raise ValueError("each type is a non-empty word without commas")
        if len(",".join(value)) > 500:
            raise ValueError("types joined by commas must fit in 500 characters")
        return value


class PlacePublic(BaseModel):
    id: str
    name: str
    lat: float
    lng: float
    types: list[str]
    category: str | None
    rating: float | None
    user_ratings_total: int | None
    description: str | None
    opening_hours: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    distance_km: float | None = Field(
        None, description="great-circle distance from `near`, when given"
    )

    @classmethod
    def of(cls, place: Place, distance_km: float | None = None) -> PlacePublic:
        return cls(
            **place.model_dump(exclude={"types"}),
            types=place.types.split(",") if place.types else [],
            distance_km=distance_km,
        )
