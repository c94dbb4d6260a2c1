"""The local Supabase Auth (GoTrue-compatible, email and password) at `/auth/v1`."""
