"""Demo data, generated deterministically: the same arguments give the same records.

Places are Google Places API objects (Place Details shape) so that they are loaded by
the importer's own code path, validation and category mapping included. Place `index`
is generated from its own seeded random stream, so `places(2000)` is a prefix of
`places(3000)` and growing the demo never rewrites the places already loaded. Place IDs
start with `ChIJdemo` (real ones start with `ChIJ`): demo rows are easy to tell apart.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from planwise.places.categories import CATEGORIES, category_for

SEED = "planwise-demo-v1"
"""Changing it changes every generated record (and so re-imports them all as updates)."""

DEMO_PASSWORD = "planwise-demo"  # noqa: S105  (public by design: printed by `demo load`)
"""Every demo user's password, printed at the end of `planwise demo load`."""

SPREAD_KM = 2.5
"""Standard deviation of a place's distance from its city centre, per axis."""
KM_PER_DEGREE_LATITUDE = 111.32


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lng: float
    districts: tuple[str, ...]
    """Neighbourhoods and streets, for names (`Café Marais`) and descriptions."""


CITIES: tuple[City, ...] = (
    City("Paris", "France", 48.8566, 2.3522,
         ("Marais", "Montmartre", "Saint-Germain", "Bastille", "Belleville", "Rivoli")),
    City("London", "United Kingdom", 51.5074, -0.1278,
         ("Soho", "Camden", "Shoreditch", "Southbank", "Notting Hill", "Covent Garden")),
    City("New York", "United States", 40.7128, -74.0060,
         ("SoHo", "Harlem", "Chelsea", "Tribeca", "Williamsburg", "Astoria")),
    City("Tokyo", "Japan", 35.6762, 139.6503,
         ("Shibuya", "Asakusa", "Shinjuku", "Ginza", "Nakameguro", "Ueno")),
    City("Sydney", "Australia", -33.8688, 151.2093,
         ("Bondi", "Surry Hills", "Newtown", "The Rocks", "Manly", "Paddington")),
    City("Cape Town", "South Africa", -33.9249, 18.4241,
         ("Bo-Kaap", "Woodstock", "Sea Point", "Gardens", "Observatory", "Camps Bay")),
    City("Rio de Janeiro", "Brazil", -22.9068, -43.1729,
         ("Lapa", "Ipanema", "Copacabana", "Santa Teresa", "Botafogo", "Leblon")),
    City("Reykjavik", "Iceland", 64.1466, -21.9426,
         ("Laugavegur", "Grandi", "Vesturbær", "Hlemmur", "Skólavörðustígur", "Tjörnin")),
    City("Singapore", "Singapore", 1.3521, 103.8198,
         ("Chinatown", "Kampong Glam", "Tiong Bahru", "Little India", "Marina", "Joo Chiat")),
    City("Oslo", "Norway", 59.9139, 10.7522,
         ("Grünerløkka", "Frogner", "Aker Brygge", "Majorstuen", "Gamle Oslo", "Tøyen")),
    City("Mexico City", "Mexico", 19.4326, -99.1332,
         ("Roma", "Condesa", "Coyoacán", "Polanco", "Centro", "Juárez")),
    City("Buenos Aires", "Argentina", -34.6037, -58.3816,
         ("Palermo", "San Telmo", "Recoleta", "La Boca", "Belgrano", "Almagro")),
)  # fmt: skip
"""Real city-centre coordinates, from 64°N (Reykjavik) to 34°S (Buenos Aires)."""

PEOPLE = ("Rossi", "Okafor", "Tanaka", "Silva", "Novak", "Haddad", "Larsen", "Moreau",
          "Kim", "Murphy", "Santos", "Weber", "Patel", "Costa", "Nakamura", "Jensen")  # fmt: skip
ADJECTIVES = ("Golden", "Little", "Blue", "Old", "Green", "Silver", "Hidden", "Grand",
              "Wild", "Quiet", "Red", "Bright", "Secret", "Royal", "Lucky", "Northern")  # fmt: skip
TOPICS = ("Modern Art", "Natural History", "Design", "Photography", "Science", "the City",
          "Maritime History", "Music", "Textiles", "Archaeology")  # fmt: skip
FEATURES = ("friendly staff", "a lively atmosphere", "its views", "good value",
            "its history", "weekend crowds", "local favourites", "its quiet corners")  # fmt: skip

# Opening hours as (open hour, close hour, closed weekday or None); close may pass midnight.
Hours = tuple[int, int, int | None]
ALWAYS_OPEN: Hours = (0, 24, None)


@dataclass(frozen=True)
class Kind:
    """How to make a plausible place of one category."""

    weight: int
    """Relative frequency: cities have more restaurants than aquariums."""
    types: tuple[str, ...]
    """Google types, most specific first, as the API returns them."""
    names: tuple[str, ...]
    """Patterns with {person}, {adjective}, {district}, {city}, {topic}."""
    blurb: str
    """What the place is, for editorial_summary.overview."""
    hours: Hours | None


POI = ("point_of_interest", "establishment")

KINDS: dict[str, Kind] = {
    "restaurant": Kind(18, ("restaurant", "food", *POI),
        ("Trattoria {person}", "The {adjective} Table", "{district} Kitchen", "Chez {person}",
         "{adjective} Lantern Bistro", "{person}'s Grill"),
        "neighbourhood restaurant", (12, 23, None)),
    "cafe": Kind(14, ("cafe", "food", *POI),
        ("Café {district}", "{adjective} Bean Coffee", "The {adjective} Cup",
         "{person}'s Coffee House", "{district} Roasters"),
        "coffee house", (7, 18, None)),
    "bar": Kind(9, ("bar", *POI),
        ("The {adjective} Fox", "{district} Tap Room", "Bar {person}", "{adjective} Hour"),
        "bar", (17, 26, None)),
    "bakery": Kind(5, ("bakery", "food", "store", *POI),
        ("Boulangerie {person}", "{district} Bakehouse", "The {adjective} Loaf"),
        "bakery", (7, 19, 1)),
    "dessert": Kind(3, ("ice_cream_shop", "food", "store", *POI),
        ("{adjective} Scoop", "Gelateria {person}", "{district} Sweets"),
        "ice cream and dessert shop", (11, 22, None)),
    "night_club": Kind(3, ("night_club", "bar", *POI),
        ("Club {adjective}", "{district} Underground", "The {adjective} Room"),
        "night club", (22, 29, 1)),
    "museum": Kind(5, ("museum", "tourist_attraction", *POI),
        ("{city} Museum of {topic}", "Museum of {topic}", "{person} Collection"),
        "museum", (10, 18, 1)),
    "art_gallery": Kind(4, ("art_gallery", "tourist_attraction", *POI),
        ("Galerie {person}", "{district} Art Space", "The {adjective} Gallery"),
        "art gallery", (11, 19, 1)),
    "theater": Kind(2, ("performing_arts_theater", "tourist_attraction", *POI),
        ("{city} Playhouse", "Théâtre {district}", "The {adjective} Stage"),
        "theatre", (18, 23, 1)),
    "movie_theater": Kind(2, ("movie_theater", *POI),
        ("{district} Cinema", "The {adjective} Screen", "Ciné {person}"),
        "cinema", (12, 24, None)),
    "casino": Kind(1, ("casino", *POI),
        ("{adjective} Casino", "{city} Casino Royale"), "casino", (18, 28, None)),
    "bowling_alley": Kind(1, ("bowling_alley", *POI),
        ("{district} Lanes", "{adjective} Strike Bowling"), "bowling alley", (12, 24, None)),
    "stadium": Kind(1, ("stadium", *POI),
        ("{city} Stadium", "{district} Arena"), "stadium", None),
    "aquarium": Kind(1, ("aquarium", "tourist_attraction", *POI),
        ("{city} Aquarium", "{adjective} Reef Aquarium"), "aquarium", (9, 18, None)),
    "zoo": Kind(1, ("zoo", "tourist_attraction", *POI),
        ("{city} Zoo", "{district} Wildlife Park"), "zoo", (9, 17, None)),
    "amusement_park": Kind(1, ("amusement_park", "tourist_attraction", *POI),
        ("{adjective} World", "{city} Fun Park"), "amusement park", (10, 20, None)),
    "botanical_garden": Kind(1, ("botanical_garden", "park", "tourist_attraction", *POI),
        ("{city} Botanic Garden", "{district} Conservatory"),
        "botanical garden", (8, 18, None)),
    "park": Kind(6, ("park", "tourist_attraction", *POI),
        ("{district} Park", "{adjective} Gardens", "{person} Square"), "park", ALWAYS_OPEN),
    "hiking": Kind(2, ("hiking_area", "tourist_attraction", *POI),
        ("{adjective} Ridge Trail", "{district} Hills Walk"), "hiking trail", None),
    "beach": Kind(2, ("beach", "natural_feature", "tourist_attraction", *POI),
        ("{district} Beach", "{adjective} Cove"), "beach", None),
    "nature": Kind(2, ("natural_feature", "tourist_attraction", *POI),
        ("{adjective} Lake", "{district} Woods", "{adjective} Falls"),
        "natural landmark", None),
    "campground": Kind(1, ("campground", "lodging", *POI),
        ("{adjective} Pines Camping", "{district} Campground"), "campground", None),
    "lodging": Kind(5, ("lodging", *POI),
        ("Hotel {district}", "The {adjective} Inn", "{person} House Hostel"),
        "hotel", ALWAYS_OPEN),
    "place_of_worship": Kind(3, ("church", "place_of_worship", "tourist_attraction", *POI),
        ("Saint {person} Church", "{district} Cathedral", "{adjective} Temple"),
        "place of worship", (8, 19, None)),
    "shopping_mall": Kind(2, ("shopping_mall", *POI),
        ("{district} Galleria", "{city} Shopping Centre"), "shopping centre", (10, 21, None)),
    "market": Kind(2, ("market", "food", *POI),
        ("{district} Market", "{adjective} Market Hall"), "market", (7, 15, 1)),
    "book_store": Kind(2, ("book_store", "store", *POI),
        ("{person} & Sons Booksellers", "{adjective} Pages", "{district} Books"),
        "bookshop", (10, 20, None)),
    "shopping": Kind(3, ("clothing_store", "store", *POI),
        ("{person} Boutique", "{adjective} Thread", "{district} Vintage"),
        "boutique", (10, 19, 0)),
    "library": Kind(1, ("library", *POI),
        ("{city} Central Library", "{district} Library"), "library", (9, 20, 0)),
    "spa": Kind(1, ("spa", *POI),
        ("{adjective} Lotus Spa", "{district} Bathhouse"), "spa", (9, 21, None)),
    "gym": Kind(2, ("gym", *POI),
        ("{district} Fitness", "{adjective} Iron Gym"), "gym", (6, 23, None)),
    "viewpoint": Kind(1, ("observation_deck", "tourist_attraction", *POI),
        ("{district} Lookout", "{adjective} Sky Deck"), "viewpoint", (9, 23, None)),
    "landmark": Kind(2, ("historical_landmark", "tourist_attraction", *POI),
        ("{person} Monument", "Old {district} Gate", "{adjective} Tower"),
        "historical landmark", ALWAYS_OPEN),
    "tourist_attraction": Kind(2, ("tourist_attraction", *POI),
        ("{district} Steps", "{adjective} Fountain", "{city} Wheel"),
        "local sight", ALWAYS_OPEN),
}  # fmt: skip

GOOGLE_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _clock(hour: int) -> str:
    """Google's weekday_text time: `9:00 AM`, `12:00 PM`, `2:00 AM` (past midnight)."""
    hour %= 24
    return f"{(hour % 12) or 12}:00 {'AM' if hour < 12 else 'PM'}"


def opening_hours(hours: Hours) -> dict[str, Any]:
    """A Places API `opening_hours` object (periods and weekday_text; no open_now, which
    depends on when it was fetched)."""
    opens, closes, closed_day = hours
    if hours == ALWAYS_OPEN:
        return {
            "periods": [{"open": {"day": 0, "time": "0000"}}],
            "weekday_text": [f"{day}: Open 24 hours" for day in (*GOOGLE_DAYS[1:], "Sunday")],
        }
    periods = []
    for day in range(7):
        if day != closed_day:
            periods.append({
                "open": {"day": day, "time": f"{opens:02d}00"},
                "close": {"day": (day + closes // 24) % 7, "time": f"{closes % 24:02d}00"},
            })  # fmt: skip
    text = []
    for day in (1, 2, 3, 4, 5, 6, 0):  # weekday_text starts on Monday
        when = (
            "Closed" if day == closed_day else f"{_clock(opens)} \u2013 {_clock(closes)}"
        )  # en dash, as Google
        text.append(f"{GOOGLE_DAYS[day]}: {when}")
    return {"periods": periods, "weekday_text": text}


_CATEGORY_ORDER = tuple(category for category in CATEGORIES if category in KINDS)
_CATEGORY_WEIGHTS = tuple(KINDS[category].weight for category in _CATEGORY_ORDER)
_ID_ALPHABET = string.ascii_letters + string.digits + "_-"


def city_of(index: int) -> City:
    """Places go round the cities in turn, so every city has places once there are 12."""
    return CITIES[index % len(CITIES)]


def place(index: int) -> dict[str, Any]:
    """The demo place number `index` as a Google Place Details `result` object."""
    rng = random.Random(f"{SEED}:place:{index}")  # noqa: S311  (demo data, not secrets)
    city = city_of(index)
    category = rng.choices(_CATEGORY_ORDER, weights=_CATEGORY_WEIGHTS)[0]
    kind = KINDS[category]
    words = {
        "person": rng.choice(PEOPLE),
        "adjective": rng.choice(ADJECTIVES),
        "district": rng.choice(city.districts),
        "city": city.name,
        "topic": rng.choice(TOPICS),
    }
    name = rng.choice(kind.names).format(**words)

    # A Gaussian cloud around the centre: 1° of longitude shrinks with cos(latitude).
    lat = city.lat + rng.gauss(0.0, SPREAD_KM) / KM_PER_DEGREE_LATITUDE
    lng_scale = KM_PER_DEGREE_LATITUDE * math.cos(math.radians(city.lat))
    lng = city.lng + rng.gauss(0.0, SPREAD_KM) / lng_scale

    record: dict[str, Any] = {
        "place_id": f"ChIJdemo{index:07d}" + "".join(rng.choices(_ID_ALPHABET, k=12)),
        "name": name,
        "geometry": {"location": {"lat": round(lat, 7), "lng": round(lng, 7)}},
        "types": list(kind.types),
        "formatted_address": f"{words['district']}, {city.name}, {city.country}",
        "business_status": "OPERATIONAL",
    }
    if rng.random() < 0.95:  # a few new places have no reviews yet
        # Ratings cluster high (most 3.5 to 4.8) and review counts are log-normal.
        record["rating"] = round(min(5.0, max(1.0, rng.gauss(4.2, 0.4))), 1)
        record["user_ratings_total"] = max(1, int(rng.lognormvariate(4.5, 1.4)))
    if kind.hours is not None:
        record["opening_hours"] = opening_hours(kind.hours)
    if rng.random() < 0.4:
        feature = rng.choice(FEATURES)
        record["editorial_summary"] = {
            "language": "en",
            "overview": f"{words['adjective']} {kind.blurb} in {words['district']}, "
            f"loved for {feature}.",
        }
    return record


def places(count: int) -> list[dict[str, Any]]:
    return [place(index) for index in range(count)]


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    city: str
    likes: tuple[str, ...]
    """Categories the user rates high; a few others get low ratings."""


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("demo_amelie", "Amélie Laurent", "Paris",
             ("museum", "cafe", "art_gallery", "bakery")),
    DemoUser("demo_oliver", "Oliver Bennett", "London",
             ("bar", "theater", "book_store", "park")),
    DemoUser("demo_maya", "Maya Rodríguez", "New York",
             ("restaurant", "art_gallery", "night_club", "viewpoint")),
    DemoUser("demo_kenji", "Kenji Watanabe", "Tokyo",
             ("place_of_worship", "restaurant", "dessert", "market")),
    DemoUser("demo_zanele", "Zanele Dlamini", "Cape Town",
             ("beach", "hiking", "nature", "restaurant")),
)  # fmt: skip

COMMENTS = {
    1: ("Disappointing, would not go back.", "Not worth the detour."),
    2: ("Overrated and crowded.", "Fine, but nothing special."),
    3: ("Decent, with a few rough edges.", "Good enough for a quick stop."),
    4: ("Lovely spot, we stayed longer than planned.", "Really good, would recommend."),
    5: ("Unforgettable. The highlight of the trip!", "Perfect in every way."),
}


@dataclass(frozen=True)
class Review:
    place_id: str
    rating: float
    comment: str


def preferences(user: DemoUser) -> dict[str, float]:
    """4 to 6 category ratings in 0..1: the user's likes high, one or two dislikes low."""
    rng = random.Random(f"{SEED}:preferences:{user.username}")  # noqa: S311
    ratings = {category: round(rng.uniform(0.7, 1.0), 2) for category in user.likes}
    others = [category for category in _CATEGORY_ORDER if category not in ratings]
    for category in rng.sample(others, rng.randint(0, 2)):
        ratings[category] = round(rng.uniform(0.0, 0.3), 2)
    return ratings


def reviews(user: DemoUser, records: Sequence[dict[str, Any]]) -> list[Review]:
    """A few reviews (1..5) of places in the user's city, liked categories first."""
    rng = random.Random(f"{SEED}:reviews:{user.username}")  # noqa: S311
    home = [record for index, record in enumerate(records) if city_of(index).name == user.city]
    liked = [record for record in home if category_for(record["types"]) in user.likes]
    pool = liked if len(liked) >= 3 else home
    chosen = rng.sample(pool, min(len(pool), rng.randint(3, 6)))
    result = []
    for record in chosen:
        base = float(record.get("rating", 4.0))
        stars = min(5, max(1, round(base + rng.gauss(0.0, 0.7))))
        result.append(Review(record["place_id"], float(stars), rng.choice(COMMENTS[stars])))
    return result
