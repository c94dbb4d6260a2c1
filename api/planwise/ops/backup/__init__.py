"""Backups: snapshot-consistent pg_dump archives with manifests, verification, GFS retention."""
