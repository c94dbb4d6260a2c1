"""Great-circle proximity that `idx_place_location` can serve.

Distances are great-circle distances on PostGIS's sphere (`ST_DistanceSphere`, radius
6370.986 km): within 0.5 % of the WGS84 spheroid, far inside a 5 km search's needs, and
several times cheaper than the spheroidal distance.

The GiST index is on `ST_SetSRID(ST_MakePoint(lng, lat), 4326)`, whose distance unit is the
planar degree. `ST_DWithin(point, centre, degrees)` on that expression uses the index; the
radius in degrees must contain every point within `radius_km` at that latitude, where a
degree of longitude shrinks to 111.2·cos(latitude) km. We size it for the highest latitude
the circle reaches, search a second copy of the centre shifted by 360° so circles crossing
the antimeridian find places on the other side, and then keep only places whose exact
great-circle distance is within the radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planwise.places.models import PLACE_POINT_SQL

KM_PER_DEGREE_LOWER_BOUND = 110.0
"""A degree of great circle is 111.19 km on PostGIS's sphere; 110 leaves a 1 % margin."""

POLAR_LATITUDE = 89.0
"""A circle reaching this latitude may wrap around the pole: search every longitude."""

MAX_RADIUS_KM = 50.0

CENTRE = "ST_SetSRID(ST_MakePoint(:centre_lng, :centre_lat), 4326)"
SHIFTED_CENTRE = "ST_SetSRID(ST_MakePoint(:centre_lng_shifted, :centre_lat), 4326)"

DISTANCE_KM_SQL = f"(ST_DistanceSphere({PLACE_POINT_SQL}, {CENTRE}) / 1000.0)"
"""Great-circle distance of a place (`place` columns in scope) from the centre, in km."""

WITHIN_SQL = (
    f"(ST_DWithin({PLACE_POINT_SQL}, {CENTRE}, :search_degrees)"
    f" OR ST_DWithin({PLACE_POINT_SQL}, {SHIFTED_CENTRE}, :search_degrees))"
    f" AND ST_DistanceSphere({PLACE_POINT_SQL}, {CENTRE}) <= :radius_m"
)
"""Places within the circle: index-served candidates, then the exact distance."""


def search_degrees(lat: float, radius_km: float) -> float:
    """Planar-degree radius that contains every point within `radius_km` of latitude `lat`."""
    reach = abs(lat) + radius_km / KM_PER_DEGREE_LOWER_BOUND
    if reach >= POLAR_LATITUDE:
        return 360.0
    return radius_km / (KM_PER_DEGREE_LOWER_BOUND * math.cos(math.radians(reach)))


@dataclass(frozen=True)
class Circle:
    lat: float
    lng: float
    radius_km: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lng <= 180):
            raise ValueError("lat must be within -90..90 and lng within -180..180")
        if not 0 < self.radius_km <= MAX_RADIUS_KM:
            raise ValueError(f"radius_km must be > 0 and <= {MAX_RADIUS_KM:g}")

    def params(self) -> dict[str, float]:
        """Bind parameters of DISTANCE_KM_SQL and WITHIN_SQL."""
        return {
            "centre_lat": self.lat,
            "centre_lng": self.lng,
            "centre_lng_shifted": self.lng - 360.0 if self.lng > 0 else self.lng + 360.0,
            "search_degrees": search_degrees(self.lat, self.radius_km),
            "radius_m": self.radius_km * 1000.0,
        }
