"""The pgbench scripts: Planwise's recommendation SQL and the design document's query.

Each transaction is what the API does for one request, as `app_service` (RLS applies).
The (user, location) pair is the request row `:n` of `bench.request`, picked at random
with the same seed for both queries, so they answer the same requests.

Ours is the API's one statement, `planwise_recommend_for` (user check, acting user and
`recommend_places()`), in autocommit; the request row is joined into it, so the round
trips are the API's: one. The document's query is `DOCUMENT_QUERY` verbatim (its CTE,
flat-degree distance, ORDER BY, LIMIT :limit, the literal 5 km) in what it needs around
it: BEGIN, `set_config('app.user_id', …, true)` (fetching the request row in the same
statement), the query, COMMIT. pgbench's `:name` variables are the bind parameters;
the category is written as NULL, as pgbench variables are strings and cannot be NULL.
"""

from __future__ import annotations

from planwise.bench.reference import DOCUMENT_QUERY

PICK_REQUEST = "\\set n random(1, :requests)\n"
"""pgbench's pick of a request row, the first line of both scripts."""

OURS_SCRIPT = (
    "\\set n random(1, :requests)\n"  # PICK_REQUEST, spelled out: a literal, not SQL built
    "SELECT r.* FROM bench.request q, LATERAL planwise_recommend_for(\n"
    "    q.user_id, NULL, NULL, q.lat, q.lng, :radius_km, :limit, :exclude_reviewed, NULL\n"
    ") r WHERE q.n = :n;\n"
)

VARIABLES = {"radius_km": "5", "limit": "20", "exclude_reviewed": "false"}
"""Constant bind values, as `-D name=value`: the API's defaults (the document's 5 km, 20)."""

DOCUMENT_SCRIPT = PICK_REQUEST + (
    "BEGIN;\n"
    "SELECT set_config('app.user_id', CAST(user_id AS text), true) AS acting,\n"
    "       user_id, lat AS user_lat, lng AS user_lng\n"
    "FROM bench.request WHERE n = :n \\gset\n" + DOCUMENT_QUERY.strip() + ";\nCOMMIT;\n"
)
SCRIPTS = {"ours": OURS_SCRIPT, "document": DOCUMENT_SCRIPT}
