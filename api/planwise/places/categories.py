"""Google Places `types` → the one Planwise `category` a place is recommended under.

A place carries several Google types (`["cafe", "bakery", "food", "point_of_interest",
"establishment"]`); preferences and recommendations need exactly one category. The rule:
of the place's types, the one that comes first in `PRIORITY` wins, whatever its position
in the place's own list, so the result does not depend on Google's ordering. Specific
types come before broader ones (bakery and cafe before restaurant, botanical_garden before
park, night_club before bar, tourist_attraction and store near the end). Generic types
(`point_of_interest`, `establishment`, `food`, `store` of a supermarket...) and types of no
interest to a trip planner (transit, offices, services) are absent: such a place has no
category (None).

Both the legacy Places API types and the Places API (New) ones are listed (`hiking_area`,
`beach`, `historical_landmark`...). `natural_feature` (legacy: lakes, mountains, beaches
alike) maps to `nature`; only an explicit `beach` type gives `beach`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator

PRIORITY: tuple[tuple[str, str], ...] = (
    # (Google type, Planwise category), highest priority first.
    ("aquarium", "aquarium"),
    ("zoo", "zoo"),
    ("wildlife_park", "zoo"),
    ("amusement_park", "amusement_park"),
    ("water_park", "amusement_park"),
    ("amusement_center", "amusement_park"),
    ("botanical_garden", "botanical_garden"),
    ("museum", "museum"),
    ("art_gallery", "art_gallery"),
    ("opera_house", "theater"),
    ("concert_hall", "theater"),
    ("performing_arts_theater", "theater"),
    ("movie_theater", "movie_theater"),
    ("casino", "casino"),
    ("bowling_alley", "bowling_alley"),
    ("stadium", "stadium"),
    ("arena", "stadium"),
    ("night_club", "night_club"),
    ("bakery", "bakery"),
    ("ice_cream_shop", "dessert"),
    ("dessert_shop", "dessert"),
    ("cafe", "cafe"),
    ("coffee_shop", "cafe"),
    ("tea_house", "cafe"),
    ("restaurant", "restaurant"),
    ("fast_food_restaurant", "restaurant"),
    ("meal_takeaway", "restaurant"),
    ("meal_delivery", "restaurant"),
    ("wine_bar", "bar"),
    ("pub", "bar"),
    ("bar", "bar"),
    ("church", "place_of_worship"),
    ("mosque", "place_of_worship"),
    ("synagogue", "place_of_worship"),
    ("hindu_temple", "place_of_worship"),
    ("place_of_worship", "place_of_worship"),
    ("shopping_mall", "shopping_mall"),
    ("department_store", "shopping_mall"),
    ("farmers_market", "market"),
    ("market", "market"),
    ("book_store", "book_store"),
    ("library", "library"),
    ("spa", "spa"),
    ("gym", "gym"),
    ("fitness_center", "gym"),
    ("campground", "campground"),
    ("rv_park", "campground"),
    ("hotel", "lodging"),
    ("hostel", "lodging"),
    ("bed_and_breakfast", "lodging"),
    ("resort_hotel", "lodging"),
    ("lodging", "lodging"),
    ("beach", "beach"),
    ("hiking_area", "hiking"),
    ("national_park", "park"),
    ("park", "park"),
    ("dog_park", "park"),
    ("garden", "park"),
    ("natural_feature", "nature"),
    ("observation_deck", "viewpoint"),
    ("historical_landmark", "landmark"),
    ("historical_place", "landmark"),
    ("monument", "landmark"),
    ("cultural_landmark", "landmark"),
    ("tourist_attraction", "tourist_attraction"),
    ("clothing_store", "shopping"),
    ("shoe_store", "shopping"),
    ("jewelry_store", "shopping"),
    ("gift_shop", "shopping"),
)

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(category for _, category in PRIORITY))
"""Every Planwise category, in priority order."""


def _known_category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}; known: {', '.join(CATEGORIES)}")
    return value


KnownCategory = Annotated[str, AfterValidator(_known_category)]
"""A category of the Google-types mapping (`CATEGORIES`): a 422 otherwise."""


_RANK = {google_type: rank for rank, (google_type, _) in enumerate(PRIORITY)}


def category_for(types: Sequence[str]) -> str | None:
    """The category of the highest-priority known type among `types`; None if none is known."""
    ranks = [_RANK[google_type] for google_type in types if google_type in _RANK]
    return PRIORITY[min(ranks)][1] if ranks else None
