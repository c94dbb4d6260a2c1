"""Contract scripts: the official supabase-py clients, sync and async, against any stack
(`SUPABASE_URL`, `SUPABASE_ANON_KEY`, `SUPABASE_SERVICE_ROLE_KEY`). README: Supabase
clients: local stack vs Supabase."""
