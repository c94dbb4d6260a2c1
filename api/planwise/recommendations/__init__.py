"""Recommendations: the user's preferred categories, scored near a point.

`service.recommend` is the production query: true great-circle distances, candidates
found through the GiST index `idx_place_location`, correct at any latitude and across
the antimeridian. The design document's example (flat-degree distance, which undercounts
away from the equator) is kept verbatim in `planwise.bench.reference` for comparison.
"""
