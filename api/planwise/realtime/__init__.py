"""Supabase Realtime for Planwise: `postgres_changes` (row-level security decides what each
subscriber receives), broadcast, presence and private channels at `/realtime/v1/websocket`,
and broadcast from servers at `/realtime/v1/api/broadcast`.

Changes reach the API process through `pg_notify` triggers (see the realtime and storage
migration) instead of logical replication: no replication slot or publication to manage,
and the same triggers work on the managed cluster and on a Supabase project.
"""

from fastapi import APIRouter

from planwise.realtime.http import router as http_router
from planwise.realtime.routes import router as websocket_router
from planwise.realtime.service import Realtime

router = APIRouter()
router.include_router(websocket_router)  # /realtime/v1/websocket
router.include_router(http_router)  # /realtime/v1/api/broadcast

__all__ = ["Realtime", "router"]
