"""Supabase Storage's REST API for Planwise (photos of places and reviews): buckets and
objects under `/storage/v1`, bytes on local disk, metadata and permissions in the
database's `storage` schema under row-level security."""
