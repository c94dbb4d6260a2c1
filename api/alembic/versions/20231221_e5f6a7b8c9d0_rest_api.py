"""The /rest/v1 data API: app_service as PostgREST's authenticator, user_id from the JWT,
recommend_places() only for signed-in callers

Revision ID: e5f6a7b8c9d0
Revises: d4e5f6a7b8c9
Create Date: 2023-12-21 10:00:00

* `/rest/v1` runs each request as `SET LOCAL ROLE anon | authenticated | service_role`,
  as PostgREST does. The API's login `app_service` becomes a member of the three roles,
  like PostgREST's `authenticator` on Supabase, and NOINHERIT like it: membership only lets
  it switch, it does not add their privileges to its own (service_role may change any
  user's `role`, which app_service itself may not). On a Supabase project the same roles
  exist and `authenticator` already holds them; this only adds app_service beside it.
  The downgrade leaves the memberships: roles are the cluster's, not one database's.
* A BEFORE INSERT trigger on `review` and `preference` fills a missing `user_id` with the
  Planwise user of the JWT's `sub` (`user.auth_user_id`), so a signed-in client inserts
  without knowing its integer id. It runs as `planwise_auth` (SECURITY DEFINER, fixed
  search_path), which may read exactly that mapping; RLS still checks the row.
* `recommend_places()` ranks places by the caller's preferences: anon has none to read,
  and called as anon it failed with "permission denied for table preference". Execution
  is now granted to `authenticated`, `service_role` and `app_service` only, so anon gets a
  plain "permission denied for function recommend_places" (PostgREST: 401).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e5f6a7b8c9d0"
down_revision: str | None = "d4e5f6a7b8c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API_ROLES = "anon, authenticated, service_role"
RECOMMEND = (
    "recommend_places(double precision, double precision, double precision, integer, boolean, text)"
)
USER_DATA = ("review", "preference")

FILL_USER_ID = """
CREATE FUNCTION public.planwise_fill_user_id() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Rows inserted without user_id belong to the Planwise user of the request's JWT
    -- (PostgREST's request.jwt.claims). No JWT user: user_id stays NULL and NOT NULL
    -- refuses the row; a user_id given is kept, and RLS decides whether it may be.
    IF NEW.user_id IS NULL THEN
        NEW.user_id := (
            SELECT u.id FROM public."user" u
            WHERE u.auth_user_id = (
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
            )::uuid
        );
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.execute("ALTER ROLE app_service NOINHERIT")
    op.execute(f"GRANT {API_ROLES} TO app_service")

    op.execute(FILL_USER_ID)
    op.execute("ALTER FUNCTION public.planwise_fill_user_id() OWNER TO planwise_auth")
    op.execute("REVOKE ALL ON FUNCTION public.planwise_fill_user_id() FROM PUBLIC")
    for table in USER_DATA:
        op.execute(
            f"CREATE TRIGGER planwise_fill_user_id BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION public.planwise_fill_user_id()"
        )

    op.execute(f"REVOKE EXECUTE ON FUNCTION {RECOMMEND} FROM PUBLIC, anon")
    op.execute(f"GRANT EXECUTE ON FUNCTION {RECOMMEND} TO app_service, authenticated, service_role")


def downgrade() -> None:
    op.execute(f"REVOKE EXECUTE ON FUNCTION {RECOMMEND} FROM service_role")
    op.execute(f"GRANT EXECUTE ON FUNCTION {RECOMMEND} TO PUBLIC")
    for table in USER_DATA:
        op.execute(f"DROP TRIGGER planwise_fill_user_id ON {table}")
    op.execute("DROP FUNCTION public.planwise_fill_user_id()")
    # app_service's memberships and NOINHERIT stay: roles are cluster-wide, shared by every
    # database of the cluster (no downgrade drops the roles themselves either), and another
    # database may still be at this revision and serve /rest/v1, storage and realtime keys.
