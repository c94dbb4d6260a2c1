"""Deterministic demo data: places around real cities and a few users who rate them."""
