"""Synthetic but realistically shaped places, users and requests, deterministic by seed.

Places are Google Places API objects (Place Details `result` shape, as the demo data
and real crawls are), so they load through the importer's own validation and COPY path.

Shape, and why:
- Cities get places in proportion to population^0.75 (big cities have more places, but
  less than proportionally), so a few hundred cities hold a long-tailed share.
- Inside a city places cluster: about a third spread around the centre (Gaussian,
  sigma growing with sqrt(population), 1.3 to 14 km), the rest around neighbourhood
  centres (sigma a third of that): dense cores, dense high streets, thin outskirts.
- Places come in crawl order: pages of 20 results around one point (a Nearby Search
  page), because that is how `places import` files are made; the table's physical order
  then follows neighbourhoods as a real imported table's does. The document's full scan
  does not care; an index scan touches fewer heap pages than in a random order.
- Categories follow the demo's weights (restaurants and cafes common, aquariums rare):
  34 categories. Ratings cluster at 3.5-4.8 (Gaussian 4.2 +- 0.45), review counts are
  log-normal (median ~55, a long tail into the hundreds of thousands), 5 % unrated.
- Requests are a user and a location drawn from the same city mixture: travellers ask
  where places are, so requests hit dense areas as often as real traffic does.
- A denser world of the same size (`city_stride`, the density bench): only every
  `city_stride`-th city, each keeping its own shape and weight, so the same number of
  places falls into a tenth of the cities: ten times the places per city and per km².
"""

from __future__ import annotations

import base64
import functools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from planwise.bench.cities import CITIES, BenchCity
from planwise.demo import data as demo

SEED = "planwise-bench-v1"
PAGE_SIZE = 20
"""Places per crawl page (a Nearby Search page holds 20)."""
PAGE_SPREAD_KM = 0.4
"""How far a page's places lie from the point it was searched around."""
CHUNK = 10_000
"""Places per seeded random stream: place i is the same whatever the total count."""
KM_PER_DEGREE = 111.195
"""Kilometres per degree of latitude on the mean sphere."""
PREFERENCES_PER_USER = 5

DISTRICTS = (
    "Old Town", "Riverside", "Harbour", "Market Street", "Station Quarter", "University",
    "Hillside", "Park Side", "Main Street", "North End", "Docklands", "Cathedral Square",
    "West End", "Garden District", "Lakeside", "Arts Quarter",
)  # fmt: skip
"""Generic neighbourhood names, for place names and addresses in any city."""

CATEGORIES: tuple[str, ...] = tuple(demo.KINDS)
_CATEGORY_WEIGHTS = tuple(kind.weight for kind in demo.KINDS.values())
_HOURS = {
    category: None if kind.hours is None else demo.opening_hours(kind.hours)
    for category, kind in demo.KINDS.items()
}


@dataclass(frozen=True)
class CityModel:
    city: BenchCity
    weight: float
    sigma_km: float
    neighbourhoods: tuple[tuple[float, float], ...]
    """(lat, lng) centres of the city's dense neighbourhoods."""

    @property
    def sub_sigma_km(self) -> float:
        return max(0.5, self.sigma_km / 3)


def _city_models() -> tuple[CityModel, ...]:
    models = []
    for city in CITIES:
        rng = random.Random(f"{SEED}:city:{city.name}")  # noqa: S311  (synthetic data)
        sigma = min(14.0, 1.0 + 1.8 * math.sqrt(city.population_m))
        count = 2 + round(3 * math.sqrt(city.population_m))
        centres = tuple(
            _offset(city.lat, city.lng, rng.gauss(0, sigma), rng.gauss(0, sigma))
            for _ in range(count)
        )
        models.append(CityModel(city, city.population_m**0.75, sigma, centres))
    return tuple(models)


def _offset(lat: float, lng: float, north_km: float, east_km: float) -> tuple[float, float]:
    """The point `north_km`/`east_km` away, clamped into valid coordinates."""
    new_lat = max(-89.9, min(89.9, lat + north_km / KM_PER_DEGREE))
    new_lng = lng + east_km / (KM_PER_DEGREE * math.cos(math.radians(new_lat)))
    if new_lng > 180:
        new_lng -= 360
    elif new_lng < -180:
        new_lng += 360
    return new_lat, new_lng


CITY_MODELS = _city_models()
DENSE_CITY_STRIDE = 10
"""The density bench's dense world: every tenth city, ten times the places per city."""


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    total, result = 0.0, []
    for weight in weights:
        total += weight
        result.append(total)
    return result


_CATEGORY_CUMULATIVE = _cumulative(tuple(float(w) for w in _CATEGORY_WEIGHTS))


@functools.cache
def _cities(city_stride: int) -> tuple[tuple[CityModel, ...], list[float]]:
    """Every `city_stride`-th city model, and their cumulative weights."""
    if city_stride < 1:
        raise ValueError(f"city_stride must be positive, got {city_stride!r}")
    models = CITY_MODELS[::city_stride]
    return models, _cumulative(tuple(model.weight for model in models))


def _spot(rng: random.Random, model: CityModel) -> tuple[float, float]:
    """A point from the city's mixture: the centre's wide cloud or a neighbourhood's."""
    if rng.random() < 0.35:
        lat, lng, sigma = model.city.lat, model.city.lng, model.sigma_km
    else:
        lat, lng = rng.choice(model.neighbourhoods)
        sigma = model.sub_sigma_km
    return _offset(lat, lng, rng.gauss(0, sigma), rng.gauss(0, sigma))


def _place(rng: random.Random, model: CityModel, anchor: tuple[float, float]) -> dict[str, Any]:
    category = rng.choices(CATEGORIES, cum_weights=_CATEGORY_CUMULATIVE)[0]
    kind = demo.KINDS[category]
    district = rng.choice(DISTRICTS)
    words = {
        "person": rng.choice(demo.PEOPLE),
        "adjective": rng.choice(demo.ADJECTIVES),
        "district": district,
        "city": model.city.name,
        "topic": rng.choice(demo.TOPICS),
    }
    lat, lng = _offset(*anchor, rng.gauss(0, PAGE_SPREAD_KM), rng.gauss(0, PAGE_SPREAD_KM))
    place_id = "ChIJ" + base64.urlsafe_b64encode(rng.randbytes(18)).decode()[:23]
    record: dict[str, Any] = {
        "place_id": place_id,
        "name": rng.choice(kind.names).format(**words),
        "geometry": {"location": {"lat": round(lat, 7), "lng": round(lng, 7)}},
        "types": list(kind.types),
        "formatted_address": f"{district}, {model.city.name}, {model.city.country}",
        "business_status": "OPERATIONAL",
    }
    if rng.random() < 0.95:
        record["rating"] = round(min(5.0, max(1.0, rng.gauss(4.2, 0.45))), 1)
        record["user_ratings_total"] = max(1, int(rng.lognormvariate(4.0, 1.6)))
    hours = _HOURS[category]
    if hours is not None:
        record["opening_hours"] = hours
    if rng.random() < 0.4:
        record["editorial_summary"] = {
            "language": "en",
            "overview": f"{words['adjective']} {kind.blurb} in {district}, "
            f"loved for {rng.choice(demo.FEATURES)}.",
        }
    return record


def places(count: int, start: int = 0, *, city_stride: int = 1) -> Iterator[dict[str, Any]]:
    """Places `start` .. `count - 1` as Google place objects, in crawl order, around every
    `city_stride`-th city."""
    models, cumulative = _cities(city_stride)
    for chunk in range(start // CHUNK, math.ceil(count / CHUNK)):
        rng = random.Random(f"{SEED}:places:{chunk}")  # noqa: S311
        first = chunk * CHUNK
        last = min(count, first + CHUNK)
        index = first
        while index < last:
            model = models[_pick(rng, cumulative)]
            anchor = _spot(rng, model)
            for _ in range(min(PAGE_SIZE, last - index)):
                record = _place(rng, model, anchor)
                if index >= start:
                    yield record
                index += 1


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    return rng.choices(range(len(cumulative)), cum_weights=cumulative)[0]


@dataclass(frozen=True)
class BenchUser:
    id: int
    username: str
    preferences: dict[str, float]


def users(count: int) -> Iterator[BenchUser]:
    """Users 1..count, each with 5 distinct preferred categories (common ones more often)
    rated 0.2 to 1.0."""
    rng = random.Random(f"{SEED}:users")  # noqa: S311
    for user_id in range(1, count + 1):
        chosen: dict[str, float] = {}
        while len(chosen) < PREFERENCES_PER_USER:
            category = CATEGORIES[_pick(rng, _CATEGORY_CUMULATIVE)]
            if category not in chosen:
                chosen[category] = round(rng.uniform(0.2, 1.0), 2)
        yield BenchUser(user_id, f"bench_user_{user_id:07d}", chosen)


@dataclass(frozen=True)
class Request:
    n: int
    user_id: int
    lat: float
    lng: float


def requests(count: int, user_count: int, *, city_stride: int = 1) -> Iterator[Request]:
    """Numbered (user, location) pairs: a random user, a location near a city, drawn
    like the places are (travellers ask where places are), of the same cities."""
    models, cumulative = _cities(city_stride)
    rng = random.Random(f"{SEED}:requests")  # noqa: S311
    for n in range(1, count + 1):
        model = models[_pick(rng, cumulative)]
        lat, lng = _spot(rng, model)
        yield Request(n, rng.randint(1, user_count), round(lat, 6), round(lng, 6))
