-- What a Supabase project needs, beyond Planwise's migrations (`planwise db migrate` with
-- MIGRATION_DATABASE_URL set to the project's direct connection), before the contract
-- scripts run against it. Run once in the SQL editor, or with psql as `postgres`.
-- Also, in the dashboard: Authentication → Sign In / Providers → Email: "Confirm email"
-- off (the contracts sign in right after signing up, as the local stack allows).

-- Storage: a signed-in user reads and writes the objects under a folder named by their
-- auth user id (Supabase's documented pattern; the local stack's storage lets owners read
-- and write their own objects). Without a policy, Supabase refuses every upload.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_policies
        WHERE schemaname = 'storage' AND tablename = 'objects'
          AND policyname = 'planwise: own folder'
    ) THEN
        CREATE POLICY "planwise: own folder" ON storage.objects FOR ALL TO authenticated
            USING ((storage.foldername(name))[1] = (SELECT auth.uid()::text))
            WITH CHECK ((storage.foldername(name))[1] = (SELECT auth.uid()::text));
    END IF;
END
$$;

-- Realtime: Supabase sends postgres_changes only for tables in this publication (and
-- then only to subscribers whose RLS policies let them see the row).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_publication_tables
        WHERE pubname = 'supabase_realtime' AND schemaname = 'public'
          AND tablename = 'preference'
    ) THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE public.preference;
    END IF;
END
$$;
