"""`GET /api/v1/admin/db`: the monitoring report for administrators."""

from fastapi import APIRouter, Request

from planwise.config import Settings
from planwise.deps import AdminUser, SessionDep
from planwise.ops.monitor import report as monitor
from planwise.ops.monitor.schemas import DatabaseReport

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/db")
def database_report(request: Request, session: SessionDep, admin: AdminUser) -> DatabaseReport:
    """The five database metrics (administrators), as `planwise monitor --json` shows them,
    plus this API process's SQLAlchemy pool, when it runs our PgBouncer's pools, and when
    the database is in a Patroni cluster Patroni's view of its members.

    Read in the request's own transaction as the application role, not with the admin URL:
    the API then holds no superuser connection, and other roles' statements and sessions
    show as figures without their text (which may carry literals, even passwords).
    """
    settings: Settings = request.app.state.settings
    report = monitor.collect(session.connection(), backup_dir=settings.backup_directory)
    report["app_pool"] = {
        **monitor.app_pool_figures(request.app.state.engine),
        "timeouts": request.app.state.metrics.registry.get_sample_value(
            "planwise_db_pool_timeouts_total"
        ),
    }
    if settings.database_pgbouncer or settings.uses_managed_cluster:
        report["pgbouncer"] = monitor.pgbouncer_figures(settings)
    monitor.add_patroni(report, settings)
    report["problems"] = monitor.problems(report, monitor.Thresholds())
    return DatabaseReport.model_validate(report)
