-- The private channel of the contract scripts (README: Supabase clients): a signed-in
-- user may read and send broadcasts on `contract-room-<their auth uid>`, nobody else.
-- Supabase's own idiom (RLS on realtime.messages, realtime.topic(), auth.uid()), so the
-- same statements run on a Supabase project and on the local stack. Idempotent.
drop policy if exists "planwise contract: read own room" on realtime.messages;
create policy "planwise contract: read own room" on realtime.messages
  for select to authenticated
  using (realtime.topic() = 'contract-room-' || (select auth.uid())::text);

drop policy if exists "planwise contract: send to own room" on realtime.messages;
create policy "planwise contract: send to own room" on realtime.messages
  for insert to authenticated
  with check (realtime.topic() = 'contract-room-' || (select auth.uid())::text
              and extension = 'broadcast');
