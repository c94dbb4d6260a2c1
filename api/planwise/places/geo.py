"""Great-circle proximity that `idx_place_location` can serve (places near, recommendations).

Distance is the great-circle distance on the WGS84 mean sphere (R = 6 371 008.8 m):
`ST_DistanceSphere`. The sphere is within 0.5 % of the spheroid, far below what a 10 %
proximity weight can tell apart, and several times cheaper than the spheroidal distance.

The GiST index is on `PLACE_POINT_SQL` (lng/lat degrees). Candidates come from it through
`&&` with one or two lng/lat boxes that provably contain the whole circle; the exact
distance filter then keeps what is truly within the radius. A box is smaller than the
`ST_DWithin` disc that would contain the same circle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from planwise.places.models import PLACE_POINT_SQL

MAX_RADIUS_KM = 50.0

ORIGIN_SQL = "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)"
DISTANCE_M_SQL = f"ST_DistanceSphere({PLACE_POINT_SQL}, {ORIGIN_SQL})"
"""Metres from the origin to a place (whose columns are in scope unqualified)."""

WITHIN_SQL = (
    f"({PLACE_POINT_SQL} && planwise_search_box(:lat, :lng, :radius_km, 1)"
    f" OR {PLACE_POINT_SQL} && planwise_search_box(:lat, :lng, :radius_km, 2))"
    f" AND {DISTANCE_M_SQL} <= :radius_km * 1000.0"
)
"""Places within the circle: index-served candidates, then the exact distance.
Parameters: `circle_params`. `planwise_search_box` (PL/pgSQL since migration b2c3d4e5f6a7,
so its body is planned once per session, not per call; first written in 9b0c1d2e3f4a) returns
one of two lng/lat boxes whose union provably holds the circle: degrees are sized with
110.5 km per degree (less than any degree of latitude has, on the sphere's 111.195 or the
spheroid's 110.574; the document's 111.32 would miss places due north or south at the
edge), shrunk by the cosine of the highest latitude the circle reaches, a circle crossing
±180° is split in two, one reaching a pole spans every longitude. The same function serves
`recommend_places()`, so there is one implementation of the search."""


def validate_point(lat: float, lng: float) -> None:
    # Written as negations so NaN fails too.
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"lat must be within [-90, 90], got {lat!r}")
    if not -180.0 <= lng <= 180.0:
        raise ValueError(f"lng must be within [-180, 180], got {lng!r}")


def validate_radius(radius_km: float) -> None:
    if not 0.0 < radius_km <= MAX_RADIUS_KM:
        raise ValueError(f"radius_km must be within (0, {MAX_RADIUS_KM:g}], got {radius_km!r}")


def circle_params(lat: float, lng: float, radius_km: float) -> dict[str, float]:
    """Validated bind parameters of `WITHIN_SQL` and `DISTANCE_M_SQL`."""
    validate_point(lat, lng)
    validate_radius(radius_km)
    return {"lat": float(lat), "lng": float(lng), "radius_km": float(radius_km)}


def parse_lat_lng(value: str) -> tuple[float, float]:
    """`"lat,lng"` → (lat, lng), in range; ValueError otherwise."""
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
