"""Planwise data platform."""
