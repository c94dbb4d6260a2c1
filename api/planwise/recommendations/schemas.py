"""Response models of recommendations (plain pydantic: nothing here is a table)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ScoreComponents(BaseModel):
    """The four normalised terms of the score, each in [0, 1], before weighting.

    score = 0.6 * preference + 0.2 * rating + 0.1 * popularity + 0.1 * proximity
    (the design document's weights), so a client can show why a place ranks where it does.
    """

    preference: float = Field(description="your preference for the place's category (0..1)")
    rating: float = Field(description="the place's rating / 5, 0 when unrated")
    popularity: float = Field(description="min(1, log10(user_ratings_total + 1) / 10)")
    proximity: float = Field(description="1 - min(1, distance_km / radius_km)")


class Recommendation(BaseModel):
    id: str
    name: str
    lat: float
    lng: float
    category: str
    rating: float | None
    user_ratings_total: int | None
    types: list[str]
    description: str | None
    distance_km: float = Field(description="great-circle distance on the WGS84 mean sphere")
    score: float
    components: ScoreComponents


class RecommendationResult(BaseModel):
    items: list[Recommendation]
    hint: str | None = Field(None, description="why the list is empty, and what to do about it")
