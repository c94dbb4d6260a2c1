"""The pgbench scripts: Planwise's recommendation SQL and the design document's query.

Each transaction is what the API does for one request: BEGIN, `set_config('app.user_id',
…, true)`, the query, COMMIT, as `app_service` (RLS applies). The (user, location) pair
is the request row `:n` of `bench.request`, picked at random with the same seed for both
queries, so they answer the same requests; fetching it is merged into the set_config
statement, so the round trips are the API's.

The document's query is `DOCUMENT_QUERY` verbatim (its CTE, flat-degree distance, ORDER
BY, LIMIT :limit, the literal 5 km): pgbench's `:name` variables are its bind parameters.
Ours is `RECOMMENDATION_SQL` with `:category` written as NULL: pgbench variables are
strings and cannot be NULL; the API binds None there, which is the same value.
"""

from __future__ import annotations

from planwise.bench.reference import DOCUMENT_QUERY
from planwise.recommendations.service import RECOMMENDATION_SQL

PICK_REQUEST = (
    "\\set n random(1, :requests)\n"
    "BEGIN;\n"
    "SELECT set_config('app.user_id', CAST(user_id AS text), true) AS acting,\n"
    "       user_id, lat, lng, lat AS user_lat, lng AS user_lng\n"
    "FROM bench.request WHERE n = :n \\gset\n"
)

OURS_SQL = RECOMMENDATION_SQL.replace(":category", "NULL")
"""The service's statement; `:lat :lng :radius_km :limit :exclude_reviewed` are variables."""

VARIABLES = {"radius_km": "5", "limit": "20", "exclude_reviewed": "false"}
"""Constant bind values, as `-D name=value`: the API's defaults (the document's 5 km, 20)."""


def script(query: str) -> str:
    """One request's transaction around `query`, for `pgbench -f`."""
    return f"{PICK_REQUEST}{query.strip()};\nCOMMIT;\n"


OURS_SCRIPT = script(OURS_SQL)
DOCUMENT_SCRIPT = script(DOCUMENT_QUERY)
SCRIPTS = {"ours": OURS_SCRIPT, "document": DOCUMENT_SCRIPT}
