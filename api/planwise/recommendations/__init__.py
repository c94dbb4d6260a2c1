"""Recommendations: the user's preferred categories, scored near a point.

`service.recommend` is the production query: true great-circle distances, candidates
found through the GiST index `idx_place_location`, correct at any latitude and across
the antimeridian. `service.DOCUMENT_QUERY` keeps the design document's example verbatim
(flat-degree distance, which undercounts away from the equator) for comparison and
benchmarks.
"""
