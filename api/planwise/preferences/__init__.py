"""A user's liking (0..1) of a place category, one per (user, category)."""
