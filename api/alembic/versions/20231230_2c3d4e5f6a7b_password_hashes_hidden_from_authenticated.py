"""Password hashes hidden from Supabase's `authenticated` role

Revision ID: 2c3d4e5f6a7b
Revises: a4b5c6d7e8f9
Create Date: 2023-12-30 09:00:00

Migration 9b0c1d2e3f4a granted `authenticated` SELECT on the whole of "user", so through
`/rest/v1/user` (or a Supabase client) a signed-in user could read their own row's
`hashed_password`: an offline guessing target. Column grants instead, as `app_read` has
had since 5c6d7e8f9a0b: every column but the hash. As in PostgREST, `select=*` on `user`
(and `return=representation` without a select list) is then refused with 42501; naming
the columns works.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2c3d4e5f6a7b"
down_revision: str | None = "a4b5c6d7e8f9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READABLE = "id, username, full_name, role, is_active, created_at, auth_user_id, password_changed_at"


def upgrade() -> None:
    op.execute('REVOKE SELECT ON "user" FROM authenticated')
    op.execute(f'GRANT SELECT ({READABLE}) ON "user" TO authenticated')


def downgrade() -> None:
    op.execute(f'REVOKE SELECT ({READABLE}) ON "user" FROM authenticated')
    op.execute('GRANT SELECT ON "user" TO authenticated')
