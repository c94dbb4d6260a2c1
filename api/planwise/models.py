"""Every table model, imported once so `metadata` is complete (Alembic, tests)."""

from planwise.db.base import metadata
from planwise.ops.monitor.models import (
    ConnectionSample,
    DbSizeSample,
    MonitorSampleRun,
    StatementCounters,
    StatementSample,
)
from planwise.places.models import Place
from planwise.preferences.models import Preference
from planwise.reviews.models import Review
from planwise.users.models import LoginThrottle, User

__all__ = [
    "ConnectionSample",
    "DbSizeSample",
    "LoginThrottle",
    "MonitorSampleRun",
    "Place",
    "Preference",
    "Review",
    "StatementCounters",
    "StatementSample",
    "User",
    "metadata",
]
