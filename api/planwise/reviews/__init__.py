"""A user's rating and comment of a place, one per (user, place)."""
