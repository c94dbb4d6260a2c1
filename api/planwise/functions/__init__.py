"""Supabase Edge Functions for Planwise: `supabase/functions/NAME/index.ts` runs on Deno,
one warm process per function, behind `/functions/v1/NAME` (see the README)."""

from planwise.functions.routes import router

__all__ = ["router"]
