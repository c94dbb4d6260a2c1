"""Supabase's API keys for the local stack and `planwise supabase status`."""
