"""Supabase Realtime's `postgres_changes` for Planwise: the official clients subscribe at
`/realtime/v1/websocket`, and row-level security decides what each subscriber receives.

Changes reach the API process through `pg_notify` triggers (see the realtime and storage
migration) instead of logical replication: no replication slot or publication to manage,
and the same triggers work on the managed cluster and on a Supabase project.
"""

from planwise.realtime.routes import router
from planwise.realtime.service import Realtime

__all__ = ["Realtime", "router"]
