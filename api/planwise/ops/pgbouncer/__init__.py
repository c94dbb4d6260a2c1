"""PgBouncer in transaction mode in front of the managed cluster."""
