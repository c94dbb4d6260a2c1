from typing import Any

from fastapi import APIRouter

from planwise.deps import AdminUser, SessionDep
from planwise.ops import monitor

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/db")
def database_report(session: SessionDep, admin: AdminUser) -> dict[str, Any]:
    """The five database metrics (administrators), as `planwise monitor --json` shows them.

    Read as the application role: statistics of other roles' statements show without
    their text, which is what an API should expose anyway.
    """
    return monitor.collect(session.connection())
