"""Supabase's data API (`/rest/v1`): PostgREST-compatible reads, writes and RPC."""

from planwise.rest.routes import router

__all__ = ["router"]
