"""Great-circle proximity that `idx_place_location` can serve (places near, recommendations).

Distance is the great-circle distance on the WGS84 mean sphere (R = 6 371 008.8 m):
`ST_DistanceSphere`. The sphere is within 0.5 % of the spheroid, far below what a 10 %
proximity weight can tell apart, and several times cheaper than the spheroidal distance.

The GiST index is on `PLACE_POINT_SQL` (lng/lat degrees). Candidates come from it through
`&&` with one or two lng/lat boxes that provably contain the whole circle (see
`search_boxes`); the exact distance filter then keeps what is truly within the radius.
A box is smaller than the `ST_DWithin` disc that would contain the same circle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planwise.places.models import PLACE_POINT_SQL

MAX_RADIUS_KM = 50.0

KM_PER_DEGREE_LOWER_BOUND = 110.5
"""Fewer km than any degree of latitude has, on the sphere (111.195) or the WGS84
spheroid (110.574 at the equator), and than a degree of longitude has at the equator.
Dividing a radius by it can only overestimate degrees, never miss a place; 111.32 (the
document's figure) would miss places due north or south near the circle's edge."""

ORIGIN_SQL = "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)"
DISTANCE_M_SQL = f"ST_DistanceSphere({PLACE_POINT_SQL}, {ORIGIN_SQL})"
"""Metres from the origin to a place (whose columns are in scope unqualified)."""

WITHIN_SQL = (
    f"({PLACE_POINT_SQL} && ST_MakeEnvelope(:west_a, :south, :east_a, :north, 4326)"
    f" OR {PLACE_POINT_SQL} && ST_MakeEnvelope(:west_b, :south, :east_b, :north, 4326))"
    f" AND {DISTANCE_M_SQL} <= :radius_km * 1000.0"
)
"""Places within the circle: index-served candidates, then the exact distance.
Parameters: `circle_params`."""


@dataclass(frozen=True)
class Box:
    """A lng/lat rectangle in degrees (west <= east, never crossing the antimeridian)."""

    west: float
    south: float
    east: float
    north: float


def search_boxes(lat: float, lng: float, radius_km: float) -> tuple[Box, Box]:
    """Two boxes whose union holds every point within `radius_km` of (lat, lng).

    Along the shortest path to a point within r km, latitude moves by at most
    r / k degrees (k = KM_PER_DEGREE_LOWER_BOUND), so the path stays below
    lat_max = |lat| + r / k, where a degree of longitude is at least k·cos(lat_max) km:
    the longitude moves by at most r / (k·cos(lat_max)) degrees. A circle reaching a pole
    spans every longitude. A circle crossing ±180° is split into a box on each side;
    otherwise both boxes are the same (the statement's shape never changes).
    """
    dlat = radius_km / KM_PER_DEGREE_LOWER_BOUND
    south, north = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    lat_max = abs(lat) + dlat
    if lat_max >= 90.0:
        dlng = 360.0
    else:
        dlng = radius_km / (KM_PER_DEGREE_LOWER_BOUND * math.cos(math.radians(lat_max)))
    if dlng >= 180.0:
        whole = Box(-180.0, south, 180.0, north)
        return whole, whole
    west, east = lng - dlng, lng + dlng
    if west < -180.0:
        return Box(-180.0, south, east, north), Box(west + 360.0, south, 180.0, north)
    if east > 180.0:
        return Box(west, south, 180.0, north), Box(-180.0, south, east - 360.0, north)
    box = Box(west, south, east, north)
    return box, box


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
    first, second = search_boxes(lat, lng, radius_km)
    return {
        "lat": float(lat),
        "lng": float(lng),
        "radius_km": float(radius_km),
        "south": first.south,
        "north": first.north,
        "west_a": first.west,
        "east_a": first.east,
        "west_b": second.west,
        "east_b": second.east,
    }
